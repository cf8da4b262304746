"""AUDIT_DELIVERY = "drain": requests only append to the journal; ``audit_management drain`` delivers."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from rail_django.conf import get_config
from rail_django.delivery import drain as drain_journal
from rail_django.delivery.dispatcher import dispatcher
from rail_django.operations import drain as drain_ops
from rail_django.security import EventType, security
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def drain_mode(settings, tmp_path):
    settings.SECURITY_EVENT_ASYNC = True
    settings.AUDIT_STORE_IN_FILE = False
    settings.AUDIT_DELIVERY = "drain"
    settings.AUDIT_JOURNAL_DIR = tmp_path / "journal"
    yield
    # Back to the writer before the shared fixture flushes (nothing waits for a drain then).
    settings.AUDIT_DELIVERY = "thread"
    dispatcher.reset()


def directory() -> Path:
    return drain_journal.drain_directory(get_config())


def drain_once(*flags: str) -> str:
    out = io.StringIO()
    call_command("audit_management", "drain", "--once", *flags, stdout=out)
    return out.getvalue()


def segments() -> list[Path]:
    return sorted(directory().glob("journal-*.jsonl"))


def failed_login(client) -> None:
    response = client.post("/login/", {"username": "nobody", "password": "wrong"})
    assert response.status_code == 200


def test_a_request_stores_nothing_until_the_drain_runs_then_exactly_one_row(drain_mode, client, audit_model):
    failed_login(client)
    assert audit_model.objects.filter(event_type=EventType.AUTH_LOGIN_FAILURE).count() == 0
    assert dispatcher._writer is None  # no writer thread in drain mode
    [segment] = segments()
    assert segment.stat().st_size > 0
    report = drain_once()
    assert audit_model.objects.filter(event_type=EventType.AUTH_LOGIN_FAILURE).count() == 1
    assert "drain: stopped; 1 event(s) delivered" in report
    assert "lag 0 byte(s)" in report
    drain_once()  # nothing new: nothing delivered twice
    assert audit_model.objects.filter(event_type=EventType.AUTH_LOGIN_FAILURE).count() == 1


def test_a_partial_last_line_waits_for_the_next_pass(drain_mode, audit_model):
    first = security.emit("drain.first")
    [segment] = segments()
    line = (segment.read_bytes()).replace(str(first.event_id).encode(), b"00000000-0000-4000-8000-000000000001")
    with open(segment, "ab") as handle:  # a line another thread is still writing
        handle.write(line[:-20])
    drain_once()
    assert list(audit_model.objects.values_list("event_type", flat=True)) == ["drain.first"]
    assert drain_journal.read_offset(segment) == len(line)
    with open(segment, "ab") as handle:
        handle.write(line[-20:])
    drain_once()
    assert audit_model.objects.filter(event_type="drain.first").count() == 2


def test_a_drain_killed_before_its_offset_write_redelivers_without_duplicate_rows(
    drain_mode, settings, audit_log_file, audit_model, monkeypatch
):
    settings.AUDIT_STORE_IN_FILE = True
    events = [security.emit("drain.redelivered", context={"n": n}) for n in range(3)]
    [segment] = segments()

    def killed(*args):
        raise KeyboardInterrupt("killed between the sinks and the offset")

    monkeypatch.setattr(drain_ops, "write_offset", killed)
    with pytest.raises(KeyboardInterrupt):
        drain_once()
    assert audit_model.objects.filter(event_type="drain.redelivered").count() == 3  # stored, offset not
    assert drain_journal.read_offset(segment) == 0
    monkeypatch.undo()
    drain_once()
    assert audit_model.objects.filter(event_type="drain.redelivered").count() == 3
    assert drain_journal.read_offset(segment) == segment.stat().st_size
    # The file sink got them at least once (twice here: the re-delivery).
    ids = [json.loads(line)["event_id"] for line in audit_log_file.read_text().splitlines()]
    assert sorted(set(ids)) == sorted(str(e.event_id) for e in events)
    assert len(ids) == 6


def test_the_file_sink_receives_the_line_from_the_drain(drain_mode, settings, audit_log_file):
    settings.AUDIT_STORE_IN_FILE = True
    event = security.emit("drain.file")
    assert not audit_log_file.exists() or str(event.event_id) not in audit_log_file.read_text()
    drain_once()
    [line] = audit_log_file.read_text().splitlines()
    assert json.loads(line)["event_id"] == str(event.event_id)


def test_a_segment_is_deleted_only_when_fully_delivered_and_not_held(drain_mode, audit_model):
    security.emit("drain.segment")
    [segment] = segments()
    reader = drain_journal.SegmentReader(directory())
    assert reader.finish(segment) is False  # held by this process (and not delivered)
    drain_once()
    assert segment.exists()  # delivered, but still this process's live segment
    security.emit("drain.segment")
    dispatcher.reset()  # the process lets go of its segment (as at rotation or exit)
    assert reader.finish(segment) is False  # not held, but one line is not delivered
    assert segment.exists()
    drain_once()
    assert not segment.exists()
    assert not drain_journal.offset_path(segment).exists()
    assert audit_model.objects.filter(event_type="drain.segment").count() == 2


def test_rotation_hands_the_old_segment_to_the_drain(drain_mode, settings, audit_model):
    settings.AUDIT_JOURNAL_SEGMENT_BYTES = 4096
    for n in range(30):
        security.emit("drain.rotated", context={"n": n, "pad": "x" * 200})
    assert len(segments()) > 1
    drain_once()
    assert audit_model.objects.filter(event_type="drain.rotated").count() == 30
    assert len(segments()) == 1  # the closed ones are deleted; the live one stays


def test_flush_waits_for_a_drain_running_in_a_thread(drain_mode, audit_model):
    security.emit("drain.flushed")
    drain = drain_ops.build_drain(poll=0.01, report=lambda line: None)
    thread = threading.Thread(target=drain.run)
    thread.start()
    try:
        assert dispatcher.flush(timeout=20) is True
        assert audit_model.objects.filter(event_type="drain.flushed").count() == 1
        assert drain_journal.drain_running(directory())
    finally:
        drain.stop()
        thread.join(10)
    assert not thread.is_alive()


def test_flush_times_out_without_a_drain_and_says_so(drain_mode, audit_model, caplog):
    security.emit("drain.waiting")
    with caplog.at_level(logging.WARNING, logger="rail_django.audit"):
        assert dispatcher.flush(timeout=0.2) is False
    assert "no drain is running" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rail_django.audit"):
        assert dispatcher.flush() is False  # no timeout: it does not wait for a drain that is not there
    assert "no drain is running" in caplog.text
    assert audit_model.objects.filter(event_type="drain.waiting").count() == 0


def test_a_second_drain_on_the_same_directory_is_refused(drain_mode):
    reader = drain_journal.SegmentReader(directory())
    assert reader.lock()
    try:
        with pytest.raises(CommandError, match="another drain is running"):
            drain_once()
    finally:
        reader.unlock()


def test_synchronous_mode_keeps_writing_before_emit_returns(drain_mode, settings, audit_model):
    settings.SECURITY_EVENT_ASYNC = False
    security.emit("drain.sync")
    assert audit_model.objects.filter(event_type="drain.sync").count() == 1
    assert not directory().exists() or not segments()


def test_a_journal_the_disk_refuses_falls_back_to_the_writer(drain_mode, audit_model, monkeypatch):
    def refused(self, event):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(drain_journal.AppendOnlyJournal, "append", refused)
    security.emit("drain.fallback")
    assert dispatcher.flush(timeout=10)
    assert audit_model.objects.filter(event_type="drain.fallback").count() == 1


@pytest.mark.parametrize(("values", "check_id"), [
    ({"AUDIT_DELIVERY": "process"}, "rail_django.E110"),
    ({"AUDIT_DELIVERY": "drain", "AUDIT_JOURNAL_DIR": None}, "rail_django.E111"),
])
def test_bad_values_fail_the_checks_with_their_ids(settings, values, check_id):
    for name, value in values.items():
        setattr(settings, name, value)
    assert check_id in [message.id for message in run_checks()]


@pytest.mark.parametrize("flags", [["--batch-size", "0"], ["--poll", "-1"], ["--poll", "soon"], ["--bogus"]])
def test_bad_flags_fail_with_one_line(drain_mode, flags):
    with pytest.raises(CommandError) as caught:
        drain_once(*flags)
    assert "\n" not in str(caught.value)


def test_a_drain_process_stopped_by_sigterm_exits_0(drain_mode, audit_model):
    security.emit("drain.subprocess")
    env = {
        **os.environ,
        "RAIL_DJANGO_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "RAIL_DJANGO_TEST_JOURNAL": str(get_config().journal_dir),
    }
    drain = subprocess.Popen(
        [sys.executable, "-m", "tests.drain.run_drain", "--poll", "0.05"], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert dispatcher.flush(timeout=30) is True, drain.stderr.read() if drain.poll() is not None else ""
        drain.send_signal(signal.SIGTERM)
        out, err = drain.communicate(timeout=30)
    finally:
        if drain.poll() is None:
            drain.kill()
    assert drain.returncode == 0, err
    assert "drain: stopped; 1 event(s) delivered" in out
    assert audit_model.objects.filter(event_type="drain.subprocess").count() == 1


def test_the_drain_lets_events_gather_unless_a_flush_waits(drain_mode, audit_model):
    drain = drain_ops.build_drain(poll=0.01, report=lambda line: None)
    drain.linger = 60.0  # (long enough that only the flush's hurry explains a delivery)
    thread = threading.Thread(target=drain.run)
    thread.start()
    try:
        assert wait_until(lambda: drain_journal.drain_running(directory()), timeout=10)
        for n in range(5):
            security.emit("drain.lingered", context={"n": n})
        threading.Event().wait(0.3)
        assert audit_model.objects.filter(event_type="drain.lingered").count() == 0  # gathering
        assert dispatcher.flush(timeout=20) is True  # the waiting flush cuts the linger short
        assert audit_model.objects.filter(event_type="drain.lingered").count() == 5
        assert drain.stats.batches == 1
        assert not list(directory().glob(".hurry-*"))
    finally:
        drain.stop()
        thread.join(10)


def test_a_waiting_flush_rings_the_drain_instead_of_waiting_for_its_poll(drain_mode, audit_model):
    drain = drain_ops.build_drain(poll=60.0, report=lambda line: None)  # it would look once a minute
    thread = threading.Thread(target=drain.run)
    thread.start()
    try:
        assert wait_until(lambda: (directory() / drain_journal.DOORBELL_NAME).exists(), timeout=10)
        security.emit("drain.rung")
        started = time.monotonic()
        assert dispatcher.flush(timeout=20) is True
        assert time.monotonic() - started < 10  # the doorbell, not the 60 s poll
        assert audit_model.objects.filter(event_type="drain.rung").count() == 1
    finally:
        stopped = time.monotonic()
        drain.stop()  # rings too: the drain's wait ends at once
        thread.join(10)
    assert not thread.is_alive() and time.monotonic() - stopped < 10
    assert not (directory() / drain_journal.DOORBELL_NAME).exists()


def test_the_mark_of_a_flush_whose_process_died_is_removed(drain_mode):
    reader = drain_journal.SegmentReader(directory())
    directory().mkdir(parents=True, exist_ok=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    mark = directory() / f"{drain_journal.HURRY_PREFIX}{int(dead.stdout)}"
    mark.touch()
    assert reader.hurried()  # recent: kept (its process may be in another pid namespace)
    old = time.time() - drain_journal.STALE_HURRY_SECONDS - 5
    os.utime(mark, (old, old))
    assert not reader.hurried() and not mark.exists()
    live = directory() / f"{drain_journal.HURRY_PREFIX}{os.getpid()}"
    live.touch()
    os.utime(live, (old, old))
    assert reader.hurried() and live.exists()  # an old mark of a running process stays


def test_a_running_drain_deletes_a_segment_its_process_let_go_of(drain_mode, audit_model):
    security.emit("drain.swept")
    [segment] = segments()
    drain = drain_ops.build_drain(poll=0.01, report=lambda line: None)
    thread = threading.Thread(target=drain.run)
    thread.start()
    try:
        assert dispatcher.flush(timeout=20) is True
        assert segment.exists()
        dispatcher.reset()  # lets go of the segment
        assert wait_until(lambda: not segment.exists(), timeout=10)
    finally:
        drain.stop()
        thread.join(10)
    assert audit_model.objects.filter(event_type="drain.swept").count() == 1


def test_the_documented_systemd_unit_runs_the_drain_with_valid_flags(drain_mode, audit_model):
    import configparser
    import shlex

    from tests.docs.markdown_blocks import block

    unit = configparser.ConfigParser()
    unit.read_string(block("delivery.md", "ini", "audit_management drain"))
    service = unit["Service"]
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "always"
    argv = shlex.split(service["ExecStart"])
    assert argv[1:4] == ["manage.py", "audit_management", "drain"]
    security.emit("drain.unit")
    call_command(*argv[2:], "--once", stdout=io.StringIO())  # its flags, as systemd would pass them
    assert audit_model.objects.filter(event_type="drain.unit").count() == 1


def test_once_exits_non_zero_when_a_sink_refuses_and_keeps_the_batch(drain_mode, audit_model, monkeypatch):
    from rail_django.sinks import DatabaseSink

    security.emit("drain.refused")
    [segment] = segments()
    original = DatabaseSink.write

    def down(self, events):
        raise ConnectionError("database down")

    monkeypatch.setattr(DatabaseSink, "write", down)
    with pytest.raises(CommandError, match="a sink refused a batch") as caught:
        drain_once()
    assert "\n" not in str(caught.value)
    assert drain_journal.read_offset(segment) == 0
    monkeypatch.setattr(DatabaseSink, "write", original)
    drain_once()
    assert audit_model.objects.filter(event_type="drain.refused").count() == 1
