"""Real faults while requests emit events: nothing is lost and no request fails.

Every fault is real and stays on loopback: PostgreSQL behind a TCP proxy that is stopped (connection refused),
another SQLite connection holding ``BEGIN EXCLUSIVE``, ``/dev/full`` as the audit file (ENOSPC), a webhook
receiver that closes each connection without answering, and 8 processes writing at once. Each test records its
figures (events emitted, events stored, requests failed) in the reliability report (see conftest.py).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import OperationalError, connection

from rail_django.delivery.dispatcher import dispatcher
from rail_django.security import security
from rail_django.sinks import DatabaseSink, WebhookSink
from tests.conftest import server_answers
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]
BACKEND = django_settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
ON_POSTGRESQL = BACKEND == "postgresql"
postgresql_only = pytest.mark.skipif(not ON_POSTGRESQL, reason="PostgreSQL fault: runs on the PostgreSQL pass")
sqlite_only_fault = pytest.mark.skipif(BACKEND != "sqlite3", reason="SQLite fault: runs on the SQLite pass")


def emit_through_requests(client, path: str, count: int, **headers) -> tuple[list[str], int]:
    """GET ``path`` ``count`` times through the test client; the event ids answered and the failed requests."""
    ids, failed = [], 0
    for _ in range(count):
        response = client.get(path, **headers)
        if response.status_code != 200:
            failed += 1
        elif path == "/emit/":
            ids.append(response.json()["event_id"])
    return ids, failed


# --- PostgreSQL refusing connections ------------------------------------------------------------------


class TcpProxy:
    """A loopback TCP proxy in front of a server; ``stop()`` closes every connection and refuses new ones."""

    def __init__(self, port: int, upstream: tuple[str, int]) -> None:
        self.port = port
        self.upstream = upstream
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), name="test-pg-proxy", daemon=True)
        self._thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while listener is self._listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self.accepted += 1
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                _close(sock)
            with self._lock:
                self._sockets.difference_update((src, dst))

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        listener.close()
        self._thread.join(5)
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv()
    except OSError:
        pass
    sock.close()


@pytest.fixture
def pg_proxy():
    alias = django_settings.DATABASES["audit_proxy"]
    default = django_settings.DATABASES["default"]
    proxy = TcpProxy(int(alias["PORT"]), (default["HOST"], int(default["PORT"])))
    proxy.start()
    yield proxy
    proxy.stop()


@postgresql_only
@pytest.mark.django_db(transaction=True, databases=["default", "audit_proxy"] if ON_POSTGRESQL else ["default"])
@pytest.mark.parametrize("async_delivery", [True, False], ids=["async", "sync"])
def test_postgresql_refusing_connections_loses_no_event(
    client, settings, audit_model, monkeypatch, pg_proxy, fault_report, async_delivery
):
    settings.SECURITY_EVENT_ASYNC = async_delivery
    settings.AUDIT_STORE_IN_FILE = False
    settings.AUDIT_DATABASE_ALIAS = "audit_proxy"  # the writer reaches PostgreSQL only through the proxy
    monkeypatch.setattr("rail_django.delivery.dispatcher.RETRY_DELAYS", (0.0,))
    monkeypatch.setattr("rail_django.delivery.dispatcher.IDLE_CLOSE_SECONDS", 0.05)

    before, failed_before = emit_through_requests(client, "/emit/", 1)
    assert security.flush(timeout=30)
    assert audit_model.objects.filter(event_id__in=before).count() == 1
    assert pg_proxy.accepted >= 1  # the row really went through the proxy

    pg_proxy.stop()
    assert not server_answers("127.0.0.1", pg_proxy.port)  # connection refused
    ids, failed = emit_through_requests(client, "/emit/", 200)
    assert failed == 0 and len(ids) == 200
    assert security.flush(timeout=60)  # the writer gave up and spooled them
    assert audit_model.objects.filter(event_id__in=ids).count() == 0  # the fault was real

    pg_proxy.start()
    assert wait_until(lambda: audit_model.objects.filter(event_id__in=ids).count() == len(ids), timeout=60)
    stored = audit_model.objects.filter(event_id__in=ids)
    assert stored.count() == len(set(stored.values_list("event_id", flat=True))) == 200
    assert audit_model.objects.filter(event_type="data.read").count() == 201  # exactly once each
    # The outage itself was recorded once, through the spool, when the database came back.
    assert wait_until(lambda: audit_model.objects.filter(event_type="system.error").count() == 1, timeout=10)
    fault_report(
        f"PostgreSQL connection refused (proxy stopped), 200 requests, SECURITY_EVENT_ASYNC={async_delivery}",
        emitted=len(ids), stored=stored.count(),
        failed_requests=failed + failed_before, note="spooled to the journal, re-delivered when the proxy returned",
    )


# --- SQLite: database is locked -------------------------------------------------------------------------


@pytest.mark.sqlite_only
@sqlite_only_fault
@pytest.mark.django_db(transaction=True)
def test_sqlite_locked_database_loses_no_event(client, settings, audit_model, monkeypatch, fault_report):
    # Fail fast on the lock instead of waiting 20 s in SQLite's busy handler: a real "database is locked".
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.05)
    settings.SECURITY_EVENT_ASYNC = True
    settings.AUDIT_STORE_IN_FILE = False
    monkeypatch.setattr("rail_django.delivery.dispatcher.IDLE_CLOSE_SECONDS", 0.05)
    locked_errors = []
    saw_lock = threading.Event()
    original = DatabaseSink.write

    def observed(self, events):  # a spy: the real write, counting the lock errors it meets
        try:
            return original(self, events)
        except OperationalError as exc:
            if "locked" in str(exc):
                locked_errors.append(exc)
                saw_lock.set()
            raise

    monkeypatch.setattr(DatabaseSink, "write", observed)
    holding, release = threading.Event(), threading.Event()

    def hold_exclusive_lock():
        other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, timeout=5)
        try:
            other.execute("BEGIN EXCLUSIVE")
            holding.set()
            release.wait(30)
            other.execute("COMMIT")
        finally:
            other.close()

    holder = threading.Thread(target=hold_exclusive_lock)
    holder.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        ids, failed = emit_through_requests(client, "/emit/", 100)
        assert saw_lock.wait(10), "the writer never met the lock: the test proved nothing"
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))  # hold it about a second
    finally:
        release.set()
        holder.join(10)

    assert failed == 0 and len(ids) == 100
    assert security.flush(timeout=60)
    assert wait_until(lambda: audit_model.objects.filter(event_id__in=ids).count() == len(ids), timeout=60)
    assert audit_model.objects.filter(event_type="data.read").count() == 100
    fault_report(
        "SQLite database is locked (BEGIN EXCLUSIVE ~1 s), 100 requests", emitted=len(ids),
        stored=audit_model.objects.filter(event_id__in=ids).count(), failed_requests=failed,
        note=f"{len(locked_errors)} 'database is locked' errors met by the writer, retried/spooled",
    )


# --- disk full for the file sink -------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.django_db(transaction=True)
def test_disk_full_file_sink_still_stores_every_event_in_the_database(client, settings, audit_model, caplog, fault_report):
    settings.SECURITY_EVENT_ASYNC = True
    settings.AUDIT_STORE_IN_FILE = True
    settings.AUDIT_LOG_FILE = "/dev/full"  # every write fails with ENOSPC, without root
    with caplog.at_level(logging.ERROR, logger="rail_django.audit"):
        ids, failed = emit_through_requests(client, "/emit/", 100)
        assert security.flush(timeout=60)
    assert failed == 0 and len(ids) == 100
    stored = audit_model.objects.filter(event_id__in=ids).count()
    assert stored == 100
    failures = [r for r in caplog.records if r.getMessage().startswith("Audit sink 'file' failed")]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert f"[Errno {errno.ENOSPC}]" in failures[0].getMessage()  # ENOSPC, not some other error
    # One incident, one alert event, stored by the sink that still works.
    assert audit_model.objects.filter(event_type="system.error").count() == 1
    fault_report(
        "disk full for the file sink (/dev/full), 100 requests", emitted=len(ids), stored=stored,
        failed_requests=failed, note="database sink complete; ENOSPC logged once on rail_django.audit",
    )


# --- webhook receiver closing the connection ----------------------------------------------------------------


class HangUpServer:
    """A raw socket server that reads what it is sent and closes the connection without answering."""

    def __init__(self) -> None:
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._running = True
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self._running:
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                except OSError:
                    pass

    def close(self) -> None:
        self._running = False
        self._thread.join(5)
        self._listener.close()


@pytest.mark.django_db(transaction=True)
def test_webhook_receiver_hanging_up_leaves_requests_alone_and_counts_every_undelivered_event(
    client, settings, audit_model, caplog, fault_report
):
    server = HangUpServer()
    settings.SECURITY_EVENT_ASYNC = True
    settings.AUDIT_STORE_IN_FILE = False
    settings.AUDIT_WEBHOOK_URL = f"http://127.0.0.1:{server.port}/hook"
    settings.AUDIT_WEBHOOK_MAX_RETRIES = 2
    settings.AUDIT_WEBHOOK_BACKOFF = 0.01
    settings.AUDIT_WEBHOOK_TIMEOUT = 5
    try:
        with caplog.at_level(logging.ERROR, logger="rail_django.audit"):
            _, failed = emit_through_requests(client, "/alert/", 20)
            assert security.flush(timeout=60)
        [sink] = [s for s in dispatcher.sinks() if isinstance(s, WebhookSink)]
        assert failed == 0
        assert (sink.delivered, sink.undelivered) == (0, 20)
        assert server.connections == 20 * 3  # each event: one attempt and two retries, no more
        gave_up = [r for r in caplog.records if "Audit webhook gave up" in r.getMessage()]
        assert len(gave_up) == 20
        stored = audit_model.objects.filter(event_type="security.alert").count()
        assert stored == 20  # the database sink is unaffected
    finally:
        server.close()
    fault_report(
        "webhook receiver closes the connection unanswered, 20 requests", emitted=20, stored=stored,
        failed_requests=failed,
        note=f"database 20/20; webhook undelivered {sink.undelivered} (counted and logged), {server.connections} attempts",
    )


# --- 8 processes x 10,000 emits --------------------------------------------------------------------------


@pytest.mark.slow
@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_eight_processes_emitting_ten_thousand_events_each_store_exactly_eighty_thousand_rows(
    audit_model, tmp_path, fault_report
):
    workers, per_worker = 8, 10_000
    journal = tmp_path / "journal"  # shared, as gunicorn workers share AUDIT_JOURNAL_DIR
    env = {
        **os.environ,
        "RAIL_DJANGO_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "RAIL_DJANGO_TEST_JOURNAL": str(journal),
        "RAIL_DJANGO_TEST_OUTPUT": str(tmp_path / "output"),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.emitter", str(w), str(per_worker), str(tmp_path / f"ids-{w}")],
            cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for w in range(workers)
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:  # all start emitting at once
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            assert proc.wait(110) == 0, proc.stdout.read()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    emitted = set()
    for w in range(workers):
        emitted.update((tmp_path / f"ids-{w}").read_text().split())
    assert len(emitted) == workers * per_worker
    rows = audit_model.objects.filter(event_type="data.read", additional_data__action="concurrent load")
    stored = [str(i) for i in rows.values_list("event_id", flat=True)]
    assert len(stored) == workers * per_worker
    assert len(set(stored)) == len(stored)  # no duplicate event_id
    assert set(stored) == emitted
    fault_report(
        "concurrency: 8 processes x 10,000 emits (PostgreSQL)", emitted=len(emitted), stored=len(stored),
        failed_requests=0, note="no duplicate event_id; background writer + journal in each process",
    )


# --- a writer starting at the instant another process opens a journal segment ------------------------------


def test_a_replay_racing_a_new_journal_segment_cannot_take_it(tmp_path, monkeypatch, fault_report):
    """A starting writer replays segments nobody holds; a segment just created must already be held.

    The race is forced: the replay of "another process" runs between the creation of the new segment and
    the moment its owner locks it. The owner's events must land in a file the replay can find later.
    """
    from rail_django.delivery import journal as journal_module
    from rail_django.security import EventType

    directory = tmp_path / "journal"
    replayed: list = []
    real_flock = journal_module.fcntl.flock
    raced = []

    def flock_after_a_replay(fd, operation):
        if not raced and operation == journal_module.fcntl.LOCK_EX | journal_module.fcntl.LOCK_NB:
            raced.append(True)
            journal_module.replay_orphans(directory, replayed.extend)  # another process's writer starting now
        return real_flock(fd, operation)

    monkeypatch.setattr(journal_module.fcntl, "flock", flock_after_a_replay)
    journal = journal_module.Journal(directory)
    events = [security.build(EventType.DATA_READ, context={"n": n}) for n in range(3)]
    try:
        segments = {journal.append(event).path for event in events}
    finally:
        monkeypatch.setattr(journal_module.fcntl, "flock", real_flock)
    assert raced, "the race was not forced: the test proved nothing"
    [path] = segments
    assert path.exists(), "the segment was unlinked by the replay: a SIGKILL now would lose its events"
    assert [e.event_id for e in journal_module.read_events(path)] == [e.event_id for e in events]
    journal.close()
    # Once its owner is gone, the next replay finds every event.
    assert journal_module.replay_orphans(directory, replayed.extend) == 3
    fault_report(
        "journal segment created while another writer replays orphans", emitted=3, stored=len(replayed),
        failed_requests=0, note="segment is created locked (under a temporary name, then renamed)",
    )
