"""No event is lost: a killed worker, a database that is down, a journal that must not grow."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.db import connection

from rail_django.delivery.dispatcher import dispatcher
from rail_django.security import EventType, security
from rail_django.sinks import DatabaseSink
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def journaled(settings, tmp_path):
    settings.SECURITY_EVENT_ASYNC = True
    settings.AUDIT_STORE_IN_FILE = False
    settings.AUDIT_JOURNAL_DIR = tmp_path / "journal"
    yield tmp_path / "journal"
    dispatcher.reset()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigkill_loses_no_event_whose_request_got_a_response(journaled, audit_model):
    port = _free_port()
    env = {
        **os.environ,
        "RAIL_DJANGO_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "RAIL_DJANGO_TEST_JOURNAL": str(journaled),
        "RAIL_DJANGO_TEST_SLOW_WRITE": "0.3",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.server", str(port)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout.readline().strip() == "ready"
        with requests.Session() as http:
            ids = [http.get(f"http://127.0.0.1:{port}/emit/", timeout=10).json()["event_id"] for _ in range(150)]
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    stored_at_kill = audit_model.objects.filter(event_id__in=ids).count()
    assert stored_at_kill < len(ids), "every event was stored before the kill: the test proved nothing"

    # The next process that starts a writer replays what the dead one journaled.
    security.emit(EventType.SYSTEM_CONFIG_CHANGE, action="restarted")
    assert security.flush(timeout=60)
    stored = {str(i) for i in audit_model.objects.filter(event_id__in=ids).values_list("event_id", flat=True)}
    assert stored == set(ids)
    assert audit_model.objects.filter(event_type="data.read").count() == len(ids)  # no duplicates
    [ours] = journaled.glob("*/journal-*.jsonl")  # only this process's open segment is left
    assert ours.name.startswith(f"journal-{os.getpid()}-")


def test_events_refused_by_a_down_database_are_spooled_and_delivered_when_it_returns(
    journaled, audit_model, monkeypatch
):
    monkeypatch.setattr("rail_django.delivery.dispatcher.RETRY_DELAYS", (0.0,))
    monkeypatch.setattr("rail_django.delivery.dispatcher.IDLE_CLOSE_SECONDS", 0.05)
    database_up = False
    original = DatabaseSink.write

    def write(self, events):
        if not database_up:
            raise ConnectionError("connection refused")
        return original(self, events)

    monkeypatch.setattr(DatabaseSink, "write", write)
    ids = {security.emit(EventType.DATA_READ, context={"n": n}).event_id for n in range(300)}
    assert security.flush(timeout=30)
    assert audit_model.objects.count() == 0
    spooled = [json.loads(line)["event_id"] for p in journaled.glob("*/*.jsonl") for line in p.read_text().splitlines()]
    assert set(spooled) >= {str(i) for i in ids}  # plus the system.error that reports the outage

    database_up = True
    security.emit(EventType.DATA_READ, context={"n": "after"})
    assert security.flush(timeout=30)
    # The writer re-delivers the spool when it is next idle.
    assert wait_until(lambda: audit_model.objects.filter(event_type="data.read").count() == 301, timeout=30)
    assert set(audit_model.objects.values_list("event_id", flat=True)) >= ids
    assert audit_model.objects.filter(event_type="data.read").count() == 301
    assert audit_model.objects.filter(event_type="system.error", severity="critical").count() == 1


def test_the_journal_is_emptied_once_events_are_stored(journaled, audit_model):
    for n in range(50):
        security.emit(EventType.DATA_READ, context={"n": n})
    assert security.flush(timeout=30)
    assert audit_model.objects.count() == 50
    [segment] = journaled.glob("*/journal-*.jsonl")
    assert segment.stat().st_size == 0


def test_a_torn_last_line_is_skipped_on_replay(journaled, audit_model, tmp_path):
    from rail_django.delivery.journal import replay_orphans
    from rail_django.sinks.base import event_json

    journaled.mkdir(parents=True)
    good = security.build(EventType.DATA_READ, action="whole line")
    (journaled / "journal-999999-1.jsonl").write_text(event_json(good) + "\n" + event_json(good)[:40])
    assert replay_orphans(journaled, DatabaseSink().write) == 1
    assert audit_model.objects.get().event_id == good.event_id
    assert not list(journaled.glob("*.jsonl"))


def test_an_event_the_database_refuses_for_good_does_not_block_the_spool(journaled, audit_model, monkeypatch):
    monkeypatch.setattr("rail_django.delivery.dispatcher.RETRY_DELAYS", (0.0,))
    monkeypatch.setattr("rail_django.delivery.dispatcher.IDLE_CLOSE_SECONDS", 0.05)
    state = {"up": False}
    original = DatabaseSink.write

    def write(self, events):
        if not state["up"] or any(e.context.get("poison") for e in events):
            raise ValueError("refused")
        return original(self, events)

    monkeypatch.setattr(DatabaseSink, "write", write)
    poison = security.emit(EventType.DATA_READ, context={"poison": True})
    good = [security.emit(EventType.DATA_READ, context={"n": n}).event_id for n in range(20)]
    assert security.flush(timeout=30)
    state["up"] = True
    assert wait_until(lambda: audit_model.objects.filter(event_id__in=good).count() == 20, timeout=30)
    # The poison is set aside after the good events are stored (the writer's next statement): wait for it.
    assert wait_until(lambda: list(journaled.glob("*/rejected-*.jsonl")), timeout=30)
    [rejected] = journaled.glob("*/rejected-*.jsonl")
    assert [json.loads(line)["event_id"] for line in rejected.read_text().splitlines()] == [str(poison.event_id)]
    assert not audit_model.objects.filter(event_id=poison.event_id).exists()
    # The spooled segment is deleted once re-delivered (the poison set aside): no journal file is left.
    assert wait_until(lambda: not list(journaled.glob("*/journal-*.jsonl")), timeout=30), list(journaled.glob("*/*"))
