"""Faults of the streaming tier: a NATS node and an ingest process killed while events flow, and the
database unreachable while ingest runs. Each test records one row of the stream fault report
(printed after the run, see tests/stream/conftest.py)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from tests.reliability.test_faults import TcpProxy
from tests.stream.conftest import ROOT, free_ports, start_ingest, subprocess_env
from tests.stream.helpers import consumer_info, wait_for
from tests.stream.test_stream import _read_start_line, emit, stored_ids

pytestmark = pytest.mark.django_db(transaction=True)


def _stop(process: subprocess.Popen) -> tuple[str, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


def _database_unreachable():
    """A context: while inside, ingest (started with the returned env) cannot write the database.

    PostgreSQL: ingest reaches it through a TCP proxy that is stopped (connection refused). SQLite: another
    connection holds an exclusive lock (every write of ingest fails with "database is locked").
    """
    if connection.vendor == "postgresql":
        proxy = TcpProxy(free_ports(1)[0], (connection.settings_dict["HOST"], int(connection.settings_dict["PORT"])))
        proxy.start()

        class Outage:
            env = {"RAIL_DJANGO_TEST_DB_PORT": str(proxy.port)}
            how = "PostgreSQL connection refused (proxy stopped)"

            def __enter__(self):
                proxy.stop()

            def __exit__(self, *exc):
                proxy.start()

            def close(self):
                proxy.stop()

        return Outage()

    class Lock:
        env = {"RAIL_DJANGO_TEST_DB_TIMEOUT": "0.2"}
        how = "SQLite locked by another connection (BEGIN EXCLUSIVE)"

        def __enter__(self):
            self.holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
            self.holder.execute("BEGIN EXCLUSIVE")

        def __exit__(self, *exc):
            self.holder.execute("COMMIT")
            self.holder.close()

        def close(self):
            pass

    return Lock()


def test_ingest_catches_up_after_the_database_was_unreachable(stream_settings, audit_model, stream_fault_report):
    outage = _database_unreachable()
    worker = start_ingest(stream_settings, "--batch", "200", "--report-every", "1", **outage.env)
    try:
        _read_start_line(worker)
        first = emit(1000)
        wait_for(lambda: audit_model.objects.count() == 1000, 60, what="the first 1000 events")
        with outage:
            second = emit(1000)  # events keep flowing into the stream while the database is away
            time.sleep(3)
            assert worker.poll() is None, worker.stderr.read()[-3000:]  # ingest waits, it does not die
        wait_for(lambda: audit_model.objects.count() >= 2000, 90, what="ingest to catch up")
        out, err = _stop(worker)
    finally:
        outage.close()
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err[-2000:]
    assert "the database refused a batch" in err
    assert stored_ids(audit_model) == set(first) | set(second)
    assert audit_model.objects.count() == 2000
    info = consumer_info(stream_settings["servers"], stream_settings["stream"], stream_settings["durable"])
    assert (info.num_pending, info.num_ack_pending) == (0, 0)
    stream_fault_report(f"database unreachable 3 s while 1000 events flow ({outage.how})", emitted=2000,
                        stored=audit_model.objects.count(), note="ingest retried, then caught up")


@pytest.mark.slow
def test_50000_events_survive_a_killed_nats_node_and_a_killed_ingest(
    stream_settings, nats_cluster, audit_model, tmp_path, stream_fault_report
):
    """Four application processes emit 12,500 events each; meanwhile NATS node 0 and one of two ingest
    processes are SIGKILLed and restarted. The database must hold exactly the 50,000 events."""
    apps_count, per_app = 4, 12_500
    ingests = [start_ingest(stream_settings, "--batch", "500", "--report-every", "2") for _ in range(2)]
    apps: list[subprocess.Popen] = []
    try:
        for worker in ingests:
            _read_start_line(worker)
        id_files = [tmp_path / f"ids-{n}.txt" for n in range(apps_count)]
        for n in range(apps_count):
            apps.append(subprocess.Popen(
                [sys.executable, "-m", "tests.stream.app", str(per_app), str(id_files[n]), "2500"],
                cwd=ROOT, env=subprocess_env(stream_settings, tmp_path / f"journal-{n}"),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            ))
        wait_for(lambda: audit_model.objects.count() >= 5000, 120, interval=0.5, what="5000 events stored")
        nats_cluster.kill(0)
        ingests[1].send_signal(signal.SIGKILL)
        ingests[1].wait(10)
        stored_at_kill = audit_model.objects.count()
        time.sleep(3)
        nats_cluster.start(0)
        ingests[1] = start_ingest(stream_settings, "--batch", "500", "--report-every", "2")
        outputs = [app.communicate(timeout=300) for app in apps]
        assert [app.returncode for app in apps] == [0] * apps_count, [err[-2000:] for _, err in outputs]
        ids: set[str] = set()
        for path in id_files:
            ids |= set(Path(path).read_text().split())
        assert len(ids) == apps_count * per_app
        loads = audit_model.objects.filter(event_type="data.read")
        wait_for(lambda: loads.count() >= len(ids), 240, interval=1, what="every event stored")
        time.sleep(2)  # anything still in flight would land now
    finally:
        for process in [*apps, *ingests]:
            if process.poll() is None:
                process.kill()
        for worker in ingests:
            _stop(worker)
    # (Besides them: the system.error events an app records when its stream sink fails, once per incident.)
    assert set(audit_model.objects.exclude(event_type="data.read").values_list("event_type", flat=True)) <= {"system.error"}
    assert {str(i) for i in loads.values_list("event_id", flat=True)} == ids
    assert loads.count() == 50_000
    assert stored_at_kill < 50_000  # the kills happened while events flowed
    stream_fault_report(
        "NATS node 0 and 1 of 2 ingest processes SIGKILLed for 3 s while 4 app processes emit 50,000 events",
        emitted=len(ids), stored=loads.count(),
        note=f"{stored_at_kill} stored at the kill; 0 duplicated (event_id unique)",
    )


def test_sigterm_while_the_database_is_unreachable_returns_the_batch_to_the_stream(stream_settings, audit_model):
    from io import StringIO

    from django.core.management import call_command

    outage = _database_unreachable()
    worker = start_ingest(stream_settings, "--batch", "100", **outage.env)
    try:
        _read_start_line(worker)
        with outage:
            ids = emit(500)
            time.sleep(2)  # ingest holds a batch it cannot store
            worker.send_signal(signal.SIGTERM)
            out, err = worker.communicate(timeout=30)
    finally:
        outage.close()
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err[-2000:]
    assert err.count("not stored were returned to the stream") >= 1
    started = time.monotonic()
    call_command("audit_management", "ingest", "--idle-exit", "2", stdout=StringIO())
    # Redelivered at once (nak), not after the consumer's ack_wait (60 s) as a batch merely abandoned would be.
    assert time.monotonic() - started < 30
    assert stored_ids(audit_model) == set(ids)
    assert audit_model.objects.count() == 500


def test_ingest_started_before_the_cluster_has_a_quorum_waits_for_it(stream_settings, nats_cluster, audit_model):
    """A cluster that has just (re)started answers JetStream requests with timeouts until its leaders are
    elected: ingest keeps asking (up to STARTUP_SECONDS) instead of dying with a traceback."""
    nats_cluster.kill(1)
    nats_cluster.kill(2)  # node 0 alone: connections succeed, JetStream has no quorum
    worker = None
    try:
        worker = start_ingest(stream_settings, "--max-events", "50", "--batch", "50")
        time.sleep(4)
        assert worker.poll() is None, worker.communicate()  # still waiting, not dead
        nats_cluster.start(1)
        nats_cluster.start(2)
        nats_cluster.wait_ready(60)
        _read_start_line(worker)
        ids = emit(50)
        out, err = worker.communicate(timeout=120)
    finally:
        if nats_cluster.processes[1] is None:
            nats_cluster.start(1)
        if nats_cluster.processes[2] is None:
            nats_cluster.start(2)
        nats_cluster.wait_ready(60)
        if worker is not None and worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    assert stored_ids(audit_model) == set(ids)
