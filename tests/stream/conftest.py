"""The streaming tier's tests run against their own 3-node NATS cluster with JetStream (R3 streams).

``nats_cluster`` (one per test module) starts three ``nats-server`` processes on free loopback ports, each
with its own temporary store directory and routes to the other two, and stops them after. Without the
``nats-server`` binary (``make test`` installs Debian's as root) the tests skip locally and fail with CI=true.
They run in the SQLite and PostgreSQL passes; the MariaDB pass skips them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
NATS_SERVER = shutil.which("nats-server") or ("/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None)


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class NatsCluster:
    """Three JetStream nodes routed to each other; ``kill(i)`` / ``start(i)`` one of them."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.ports = free_ports(6)
        self.client_ports, self.route_ports = self.ports[:3], self.ports[3:]
        self.processes: list[subprocess.Popen | None] = [None, None, None]
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.route_ports)
        for i in range(3):
            (base / f"n{i}").mkdir(parents=True, exist_ok=True)
            (base / f"n{i}.conf").write_text(
                f'server_name: "n{i}"\nlisten: "127.0.0.1:{self.client_ports[i]}"\n'
                f'jetstream {{ store_dir: "{base / f"n{i}"}", max_memory_store: 64MB, max_file_store: 2GB }}\n'
                f'cluster {{ name: "rail-test", listen: "127.0.0.1:{self.route_ports[i]}", routes: [{routes}] }}\n'
            )

    @property
    def servers(self) -> list[str]:
        return [f"nats://127.0.0.1:{p}" for p in self.client_ports]

    def start(self, i: int | None = None) -> None:
        for n in range(3) if i is None else [i]:
            log = open(self.base / f"n{n}.log", "ab")  # noqa: SIM115 -- the server's, closed with it
            self.processes[n] = subprocess.Popen(
                [NATS_SERVER, "-c", str(self.base / f"n{n}.conf")], stdout=log, stderr=subprocess.STDOUT,
            )
            log.close()

    def kill(self, i: int) -> None:
        process = self.processes[i]
        if process is not None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            self.processes[i] = None

    def stop(self) -> None:
        for i, process in enumerate(self.processes):
            if process is not None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                self.processes[i] = None

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until JetStream answers on every running node (a meta leader is elected)."""
        deadline = time.monotonic() + timeout
        running = [self.servers[i] for i, p in enumerate(self.processes) if p is not None]
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                asyncio.run(_jetstream_ready(running))
                return
            except Exception as exc:
                last = exc
                time.sleep(0.2)
        raise RuntimeError(f"the NATS cluster did not become ready in {timeout} s: {last!r}")


async def _quiet(exc: Exception) -> None:
    pass


async def _jetstream_ready(servers: list[str]) -> None:
    import nats

    for server in servers:
        client = await nats.connect(server, connect_timeout=1, allow_reconnect=False, error_cb=_quiet)
        try:
            await client.jetstream(timeout=2).account_info()
        finally:
            await client.close()


def require_nats_server() -> None:
    if NATS_SERVER is not None:
        return
    message = "nats-server is not installed (make test installs Debian's nats-server as root)"
    if IN_CI:
        pytest.fail(f"{message}, and CI=true forbids skipping", pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _sqlite_and_postgresql_only():
    if connection.vendor not in ("sqlite", "postgresql"):
        pytest.skip("runs in the SQLite and PostgreSQL passes")


@pytest.fixture(scope="module")
def nats_cluster():
    require_nats_server()
    if django_settings.DATABASES["default"]["ENGINE"].endswith("mysql"):
        pytest.skip("runs in the SQLite and PostgreSQL passes")
    base = Path(tempfile.mkdtemp(prefix="rail-nats-"))
    cluster = NatsCluster(base)
    cluster.start()
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def stream_settings(nats_cluster, settings):
    """AUDIT_STREAM for this test: its own R3 stream, subject and durable on the cluster."""
    name = "T" + uuid.uuid4().hex[:10]
    value = {
        "backend": "nats", "servers": nats_cluster.servers, "stream": name, "subject": f"audit.{name}",
        "replicas": 3, "durable": f"ingest-{name}", "connect_timeout": 1, "publish_timeout": 3, "batch": 500,
    }
    settings.AUDIT_STREAM = value
    settings.SECURITY_EVENT_ASYNC = True
    settings.AUDIT_STORE_IN_FILE = False
    return value


_FAULT_ROWS: list[str] = []


@pytest.fixture
def stream_fault_report():
    """``stream_fault_report(fault, emitted=, stored=, note=)``: one row of the stream fault table."""

    def record(fault: str, *, emitted: int, stored: int, note: str = "") -> None:
        _FAULT_ROWS.append(f"| {fault} | {connection.vendor} | {emitted} | {stored} | {emitted - stored} | {note} |")

    return record


@pytest.hookimpl(tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    if not _FAULT_ROWS:
        return
    lines = ["| fault | database | events emitted | events stored | lost | note |", "|---|---|---|---|---|---|",
             *_FAULT_ROWS]
    terminalreporter.section("stream fault report")
    for line in lines:
        terminalreporter.write_line(line)
    path = Path(django_settings.TEST_OUTPUT) / "stream-fault-report.md"
    try:
        path.write_text("\n".join(lines) + "\n")
        terminalreporter.write_line(f"(written to {path})")
    except OSError as exc:
        terminalreporter.write_line(f"(could not write {path}: {exc})")


def subprocess_env(stream: dict, journal: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a helper process (tests/stream/app.py, ingest) sharing this test's database."""
    import json

    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "tests.settings",
           "RAIL_DJANGO_TEST_DB_NAME": connection.settings_dict["NAME"], "RAIL_DJANGO_STREAM": json.dumps(stream)}
    if journal is not None:
        env["RAIL_DJANGO_TEST_JOURNAL"] = str(journal)
    env.update(extra)
    return env


def start_ingest(stream: dict, *args: str, **extra: str) -> subprocess.Popen:
    """``audit_management ingest`` in its own process (tests/stream/manage.py sets the database up)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.stream.manage", "audit_management", "ingest", *args],
        cwd=ROOT, env=subprocess_env(stream, **extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
