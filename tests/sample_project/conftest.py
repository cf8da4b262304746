"""The sample project served for real: ``migrate`` + ``demo_setup`` + ``runserver`` on a free port, in subprocesses.

The sample has its own settings (``sample_site.settings``) and SQLite file, so
it runs in its own processes with ``SAMPLE_DATA_DIR`` pointing at a temporary
folder; tests talk to it over HTTP and read its database with ``sqlite3``.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_project"
PASSWORD = "sample-tests-pass-1"


def sample_env(data_dir: Path, debug: bool) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env.update(SAMPLE_DATA_DIR=str(data_dir), SAMPLE_DEBUG="1" if debug else "0", PYTHONUNBUFFERED="1")
    return env


def manage(data_dir: Path, *args: str, debug: bool = True, check: bool = True) -> subprocess.CompletedProcess:
    """Run the sample's ``manage.py`` with its own settings and data folder."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=SAMPLE_DIR, env=sample_env(data_dir, debug),
        capture_output=True, text=True, timeout=300,
    )
    if check and result.returncode != 0:
        pytest.fail(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SampleServer:
    """A running sample project: its URL, data folder and database."""

    data_dir: Path
    base_url: str = ""
    process: Any = None
    setup_output: str = ""
    log: Path = field(default=Path())

    @property
    def db_path(self) -> Path:
        return self.data_dir / "db.sqlite3"

    def url(self, path: str) -> str:
        return self.base_url + path

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=20) as conn:
            return conn.execute(sql, params).fetchall()

    def events(self, where: str, params: tuple = ()) -> list[dict[str, Any]]:
        """Audit rows matching ``where``, oldest first, with ``additional_data`` decoded."""
        columns = ["id", "event_type", "severity", "username", "user_id", "client_ip", "user_agent", "request_path",
                   "request_method", "additional_data", "success", "correlation_id", "timestamp"]
        rows = self.query(f"SELECT {', '.join(columns)} FROM rail_django_auditeventmodel WHERE {where} ORDER BY id", params)
        events = [dict(zip(columns, row, strict=True)) for row in rows]
        for event in events:
            event["additional_data"] = json.loads(event["additional_data"])
        return events

    def wait_for_events(self, where: str, params: tuple = (), count: int = 1, timeout: float = 15) -> list[dict[str, Any]]:
        """The audit writer runs in the background: wait until ``count`` rows match (or fail)."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events(where, params)
            if len(events) >= count or time.monotonic() > deadline:
                assert len(events) >= count, f"expected {count} event(s) where {where} {params}, found {events}"
                return events
            time.sleep(0.1)


def start_server(data_dir: Path, debug: bool = True) -> SampleServer:
    data_dir.mkdir(parents=True, exist_ok=True)
    server = SampleServer(data_dir=data_dir, log=data_dir / "server.log")
    manage(data_dir, "migrate", "--noinput", debug=debug)
    server.setup_output = manage(data_dir, "demo_setup", "--password", PASSWORD, debug=debug).stdout
    port = free_port()
    server.base_url = f"http://127.0.0.1:{port}"
    with open(server.log, "wb") as log:
        server.process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=SAMPLE_DIR, env=sample_env(data_dir, debug), stdout=log, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                stop_server(server)
                pytest.fail(f"the sample server did not start:\n{server.log.read_text()}")
            time.sleep(0.2)


def stop_server(server: SampleServer) -> None:
    if server.process is not None and server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


@pytest.fixture(scope="session")
def sample_server(tmp_path_factory):
    """The sample project in debug mode (as ``make demo`` runs it), seeded by ``demo_setup``."""
    server = start_server(tmp_path_factory.mktemp("sample-debug"), debug=True)
    yield server
    stop_server(server)


def login(session: requests.Session, server: SampleServer, username: str, password: str, **headers: str) -> requests.Response:
    """Post the login form the way a browser does (CSRF cookie and token); no redirect followed."""
    session.headers.update(headers)
    session.get(server.url("/accounts/login/")).raise_for_status()
    return session.post(
        server.url("/accounts/login/"),
        data={"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        allow_redirects=False,
    )


def post_form(session: requests.Session, server: SampleServer, path: str) -> requests.Response:
    return session.post(server.url(path), data={"csrfmiddlewaretoken": session.cookies["csrftoken"]}, allow_redirects=False)


def graphql(session: requests.Session, server: SampleServer, query: str, variables: dict | None = None,
            csrf: bool = True) -> requests.Response:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if csrf:
        headers["X-CSRFToken"] = session.cookies.get("csrftoken", "")
    return session.post(server.url("/graphql/"), data=json.dumps({"query": query, "variables": variables or {}}),
                        headers=headers)
