"""AUDIT_STREAM: events published to a replicated JetStream stream (R3) and `audit_management ingest`.

Every test runs against the module's own 3-node NATS cluster (tests/stream/conftest.py) with a stream of
its own; the database is the test database, shared with the helper processes (tests/stream/app.py,
tests/stream/manage.py).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from rail_django.delivery.dispatcher import dispatcher
from rail_django.security import EventType, security
from rail_django.sinks import StreamSink
from rail_django.sinks.base import event_json
from tests.stream.conftest import NATS_SERVER, ROOT, free_ports, require_nats_server, start_ingest, subprocess_env
from tests.stream.helpers import consumer_info, publish_raw, stream_messages, stream_state, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def stored_ids(audit_model) -> set[str]:
    return {str(x) for x in audit_model.objects.values_list("event_id", flat=True)}


def emit(count: int) -> list[str]:
    ids = [str(security.emit(EventType.DATA_READ, action="stream test", context={"n": n}).event_id) for n in range(count)]
    assert security.flush(timeout=60)
    return ids


def test_emitted_events_reach_the_stream_with_their_event_id_as_message_id(stream_settings, client, audit_model):
    ids = [client.get("/emit/").json()["event_id"] for _ in range(5)]
    assert security.flush(timeout=30)

    messages = dict(stream_messages(stream_settings["servers"], stream_settings["stream"]))
    for event_id in ids:
        assert messages[event_id]["event_id"] == event_id
        assert messages[event_id]["event_type"] == "data.read"
        assert messages[event_id]["context"]["api_key"] != "sk_live_abc"  # redacted before it left
    assert stream_state(stream_settings["servers"], stream_settings["stream"]).messages == len(ids)
    # The stream replaces the database sink: rows come only through ingest.
    assert audit_model.objects.count() == 0
    assert [type(s) for s in dispatcher.sinks()] == [StreamSink]


def test_a_resent_event_is_dropped_by_the_stream(stream_settings):
    events = [security.emit(EventType.DATA_READ, context={"n": n}) for n in range(20)]
    assert security.flush(timeout=30)
    servers, stream = stream_settings["servers"], stream_settings["stream"]
    assert stream_state(servers, stream).messages == 20

    sink = dispatcher.sinks()[0]
    sink.write(events)  # what the journal's re-send does after a lost ack
    acks = publish_raw(servers, stream_settings["subject"], [(str(events[0].event_id), b"{}")])

    assert acks[0].duplicate is True
    assert sink.duplicates == 20  # JetStream acknowledged each resent event as a duplicate
    assert stream_state(servers, stream).messages == 20


def test_ingest_stores_each_event_exactly_once_and_acknowledges_after_commit(stream_settings, audit_model):
    servers = stream_settings["servers"]
    events = [security.emit(EventType.DATA_READ, context={"n": n}) for n in range(300)]
    assert security.flush(timeout=60)
    # A resend after the duplicate window: the same events under new message ids.
    publish_raw(servers, stream_settings["subject"], [(f"late-{e.event_id}", event_json(e).encode()) for e in events[:50]])

    out = StringIO()
    call_command("audit_management", "ingest", "--idle-exit", "2", "--batch", "100", stdout=out)

    assert stored_ids(audit_model) == {str(e.event_id) for e in events}
    assert audit_model.objects.count() == 300
    assert "stopped; 350 message(s) stored" in out.getvalue()
    assert re.search(r"lag 0\b", out.getvalue()), out.getvalue()
    info = consumer_info(servers, stream_settings["stream"], stream_settings["durable"])
    assert (info.num_pending, info.num_ack_pending) == (0, 0)
    row = audit_model.objects.get(event_id=events[7].event_id)
    assert row.additional_data["context"] == {"n": 7}


def _read_start_line(process: subprocess.Popen) -> str:
    line = process.stdout.readline()
    assert line.startswith("ingest: consuming"), (line, process.stderr.read() if process.poll() is not None else "")
    return line


def _stored_by(output: str) -> int:
    match = re.search(r"stopped; (\d+) message\(s\) stored", output)
    assert match, output
    return int(match.group(1))


def test_ingest_processes_share_one_durable_consumer(stream_settings, audit_model):
    """A second and third process continue where the first stopped, side by side, and nothing is stored twice.

    Which of two concurrent processes JetStream serves is not fixed (a process starved of CPU may get
    nothing), so the share is proven in order: the first stops after exactly 1,000, the others store the
    rest together, and the database holds each event once.
    """
    ids = []
    for _ in range(10):  # a flow, as from application servers
        ids += emit(300)
    first = start_ingest(stream_settings, "--max-events", "1000", "--batch", "50")
    try:
        _read_start_line(first)
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert _stored_by(out) == 1000
    assert audit_model.objects.count() == 1000

    workers = [start_ingest(stream_settings, "--idle-exit", "4", "--batch", "50") for _ in range(2)]
    try:
        for worker in workers:
            _read_start_line(worker)
        outputs = [worker.communicate(timeout=120) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert sum(_stored_by(out) for out, _ in outputs) == 2000  # the rest, not the first one's 1,000 again
    assert stored_ids(audit_model) == set(ids)
    assert audit_model.objects.count() == 3000


def test_sigterm_stops_ingest_after_storing_and_acknowledging_its_batch(stream_settings, audit_model):
    worker = start_ingest(stream_settings, "--batch", "100")
    try:
        _read_start_line(worker)
        ids = emit(2000)
        wait_for(lambda: audit_model.objects.count() > 0, 60, what="ingest to store a first batch")
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    assert "ingest: stopped;" in out
    info = consumer_info(stream_settings["servers"], stream_settings["stream"], stream_settings["durable"])
    assert info.num_ack_pending == 0  # what it fetched it stored and acknowledged before exiting
    assert audit_model.objects.count() == _stored_by(out)

    call_command("audit_management", "ingest", "--idle-exit", "2", stdout=StringIO())  # the rest
    assert stored_ids(audit_model) == set(ids)
    assert audit_model.objects.count() == 2000


def test_ingest_bad_flags_and_missing_stream_exit_non_zero_with_one_line(stream_settings, settings):
    for flags in (["--batch", "0"], ["--batch", "20000"], ["--idle-exit", "soon"], ["--max-events", "-3"]):
        result = subprocess.run(
            [sys.executable, "-m", "tests.stream.manage", "audit_management", "ingest", *flags],
            cwd=ROOT, env=subprocess_env(stream_settings), capture_output=True, text=True, timeout=60,
        )
        assert result.returncode != 0
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    unreachable = {**stream_settings, "servers": [f"nats://127.0.0.1:{free_ports(1)[0]}"]}
    result = subprocess.run(
        [sys.executable, "-m", "tests.stream.manage", "audit_management", "ingest"],
        cwd=ROOT, env=subprocess_env(unreachable), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1 and "cannot reach NATS" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    settings.AUDIT_STREAM = None
    with pytest.raises(CommandError, match="AUDIT_STREAM is not set"):
        call_command("audit_management", "ingest", "--idle-exit", "1")


def test_nats_down_events_stay_in_the_journal_and_are_sent_when_it_returns(settings, client, tmp_path):
    """No NATS at all: requests answer, events wait in the journal, and reach the stream once NATS starts."""
    require_nats_server()
    port = free_ports(1)[0]
    stream = {"backend": "nats", "servers": [f"nats://127.0.0.1:{port}"], "stream": "DOWN", "subject": "audit.down",
              "connect_timeout": 0.5, "publish_timeout": 2}
    settings.AUDIT_STREAM = stream
    settings.SECURITY_EVENT_ASYNC = True
    settings.AUDIT_STORE_IN_FILE = False

    started = time.monotonic()
    responses = [client.get("/emit/") for _ in range(30)]
    request_seconds = time.monotonic() - started
    assert [r.status_code for r in responses] == [200] * 30
    assert request_seconds < 5  # the requests never waited for NATS
    ids = {r.json()["event_id"] for r in responses}
    assert security.flush(timeout=60)
    journal = dispatcher.journal
    assert journal is not None and journal.spooled()  # kept, not lost
    kept = "".join(p.read_text() for p in journal.directory.glob("journal-*.jsonl"))
    assert all(event_id in kept for event_id in ids)

    store = Path(tempfile.mkdtemp(dir=tmp_path))
    server = subprocess.Popen([NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def delivered() -> bool:
            try:
                return {i for i, _ in stream_messages(stream["servers"], "DOWN")} >= ids
            except Exception:
                return False

        wait_for(delivered, 60, interval=0.5, what="the journaled events to reach the stream")
        wait_for(lambda: not journal.spooled(), 30, what="the spool to be emptied")
        messages = stream_messages(stream["servers"], "DOWN")
        # Each once: the 30 events and the sink-failure event the outage raised (itself an audit event).
        assert len(messages) == len({msg_id for msg_id, _ in messages}) == 31
        assert sorted(body["event_type"] for msg_id, body in messages if msg_id not in ids) == ["system.error"]
    finally:
        settings.AUDIT_STREAM = None  # closes the sink before its server goes
        server.terminate()
        server.wait(10)


def test_replay_sends_a_dead_process_journal_to_the_stream(stream_settings, settings):
    """`audit_management replay` with AUDIT_STREAM: a stopped process's segment is published, then deleted."""
    from rail_django.conf import get_config
    from rail_django.sinks.base import event_line
    from rail_django.sinks.stream import stream_journal_directory

    events = [security.emit(EventType.DATA_READ, context={"n": n}) for n in range(5)]
    assert security.flush(timeout=30)
    before = stream_state(stream_settings["servers"], stream_settings["stream"]).messages
    # What a killed process leaves: its segment, with events the stream never received (new ids).
    directory = stream_journal_directory(settings.AUDIT_JOURNAL_DIR, get_config().stream)
    directory.mkdir(parents=True, exist_ok=True)
    orphan = directory / "journal-999999-1.jsonl"
    lost = [security.emit(EventType.DATA_READ, context={"lost": n}) for n in range(3)]
    assert security.flush(timeout=30)
    lines = []
    for event in lost:
        data = json.loads(event_line(event))
        data["event_id"] = str(uuid.uuid4())
        lines.append(json.dumps(data) + "\n")
    orphan.write_text("".join(lines))

    out = StringIO()
    call_command("audit_management", "replay", stdout=out)

    assert not orphan.exists()
    ids = {msg_id for msg_id, _ in stream_messages(stream_settings["servers"], stream_settings["stream"])}
    assert {json.loads(line)["event_id"] for line in lines} <= ids
    assert stream_state(stream_settings["servers"], stream_settings["stream"]).messages == before + 3 + 3
    assert "Replayed 3 events" in out.getvalue()
    assert len(events) == 5
