"""One benchmark process: one variant of the project, its request scenarios timed through the WSGI handler.

    python benchmarks/requests_worker.py prepare --variant rail --db PATH
    python benchmarks/requests_worker.py serve --variant rail --template PATH [--scale 1.0]

``prepare`` migrates a fresh SQLite file and creates the benchmark user (the
parent copies that file for every round). ``serve`` is one variant's process
for one round: it copies the template, logs in through the real login page,
then answers the parent's commands (see :class:`Server`), so the parent can
interleave the variants batch by batch. Requests are made by calling
``django.core.handlers.wsgi.WSGIHandler`` with a prepared environ (no
network, no test client). A batch ends with ``security.flush()`` for the
rail-django variants, so the figure includes writing the rows the requests
queued.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

USERNAME, PASSWORD = "bench", "bench-password-1"
GRAPHQL_QUERY = "query Items { items(size: 1000) { id name sku price inStock } }"
GRAPHQL_MUTATION = 'mutation Rename { renameGroup(id: 1, name: "renamed") { ok } }'
#: The tables each package writes, counted before and after each scenario.
AUDIT_TABLES = {
    "rail": ["rail_django.AuditEventModel"],
    "rail-sync": ["rail_django.AuditEventModel"],
    "rail-drain": ["rail_django.AuditEventModel"],
    "easy-audit": ["easyaudit.RequestEvent", "easyaudit.LoginEvent", "easyaudit.CRUDEvent"],
    "axes": ["axes.AccessAttempt", "axes.AccessLog", "axes.AccessFailureLog"],
    "auditlog": ["auditlog.LogEntry"],
    "bare": [],
}


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    method: str
    path: str
    status: int
    per_batch: int
    auth: bool = False
    form: dict[str, str] | None = None
    graphql: str | None = None
    variants: tuple[str, ...] | None = None  # None: every variant
    expect_rows: bool = False  # does the audit package record each request?
    body_check: str | None = None


SCENARIOS: list[Scenario] = [
    Scenario("anon_get", "anonymous GET of a trivial view", "GET", "/plain/", 200, 500),
    Scenario("auth_get", "authenticated GET", "GET", "/me/", 200, 300, auth=True),
    Scenario(
        "login_failed", "failed login POST (LoginView, MD5 hasher)", "POST", "/login/", 200, 100,
        form={"username": USERNAME, "password": "wrong-password"}, expect_rows=True,
    ),
    Scenario(
        "login_success", "successful login POST", "POST", "/login/", 302, 100,
        form={"username": USERNAME, "password": PASSWORD}, expect_rows=True,
    ),
    Scenario(
        "emit", "custom event recorded in a view", "GET", "/emit/", 200, 300, auth=True,
        variants=("bare", "rail", "rail-sync", "rail-drain", "auditlog"), expect_rows=True,
    ),
    Scenario(
        "graphql_mutation", "GraphQL mutation (one UPDATE)", "POST", "/graphql/", 200, 100, auth=True,
        graphql=GRAPHQL_MUTATION, expect_rows=True, body_check='"ok":true',
    ),
    Scenario(
        "graphql_query_1000x5", "GraphQL query, 1,000 objects x 5 fields (not audited)", "POST", "/graphql/", 200, 4,
        auth=True, graphql=GRAPHQL_QUERY, body_check='"sku":"SKU-00999"',
    ),
]


def setup_django(variant: str, db_path: str) -> None:
    os.environ["BENCH_VARIANT"] = variant
    os.environ["BENCH_DB"] = "sqlite"
    os.environ["BENCH_DB_NAME"] = db_path
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.project.settings"
    import django

    django.setup()


def prepare(variant: str, db_path: str) -> None:
    """Migrate a new database file and create the user and the group the scenarios use."""
    Path(db_path).unlink(missing_ok=True)
    setup_django(variant, db_path)
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0, interactive=False)
    get_user_model().objects.create_user(USERNAME, password=PASSWORD)
    Group.objects.create(pk=1, name="bench")
    if variant in ("rail", "rail-sync"):  # (rail-drain: what migrate recorded stays in prepare's journal)
        from rail_django.security import security

        security.flush()
    connections.close_all()


@dataclass
class Client:
    """Calls the WSGI handler with a prepared environ; keeps cookies like a browser would."""

    handler: Any
    cookies: dict[str, str] = field(default_factory=dict)

    def environ(self, method: str, path: str, body: bytes = b"", content_type: str = "",
                cookies: dict[str, str] | None = None) -> dict[str, Any]:
        jar = cookies if cookies is not None else self.cookies
        env = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "bench.example",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "203.0.113.7",
            "HTTP_HOST": "bench.example",
            "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
            "HTTP_ACCEPT": "text/html,application/json",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body)),
        }
        if content_type:
            env["CONTENT_TYPE"] = content_type
        if jar:
            env["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        if method == "POST":
            env["HTTP_REFERER"] = "http://bench.example/login/"
        return env

    def call(self, env: dict[str, Any], body: bytes = b"") -> tuple[int, list[tuple[str, str]], bytes]:
        """One request: ``(status, raw header list, body)``; nothing more is done with the response here."""
        env = dict(env)
        env["wsgi.input"] = io.BytesIO(body)
        captured: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured[:] = (status, headers)
            return lambda data: None

        result = self.handler(env, start_response)
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        return int(captured[0].split()[0]), captured[1], content

    def remember(self, headers: list[tuple[str, str]]) -> None:
        for name, value in headers:
            if name.lower() == "set-cookie":
                cookie, _, rest = value.partition("=")
                self.cookies[cookie] = rest.split(";", 1)[0]


def login_state(client: Client) -> tuple[dict[str, str], str, dict[str, str]]:
    """``(anonymous cookies, csrf form token, logged-in cookies)``, through the real login page."""
    status, headers, body = client.call(client.environ("GET", "/login/", cookies={}))
    assert status == 200, status
    client.cookies = {}
    client.remember(headers)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()
    anonymous = dict(client.cookies)
    form = urlencode({"username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": token}).encode()
    env = client.environ("POST", "/login/", form, "application/x-www-form-urlencoded", cookies=anonymous)
    status, headers, _ = client.call(env, form)
    assert status == 302, f"login failed: {status}"
    client.remember(headers)
    return anonymous, token, dict(client.cookies)


def request_for(scenario: Scenario, client: Client, anonymous: dict[str, str], token: str,
                logged_in: dict[str, str]) -> tuple[dict[str, Any], bytes]:
    cookies = logged_in if scenario.auth else anonymous
    if scenario.graphql:
        body = json.dumps({"query": scenario.graphql}).encode()
        return client.environ("POST", scenario.path, body, "application/json", cookies=cookies), body
    if scenario.form is not None:
        body = urlencode({**scenario.form, "csrfmiddlewaretoken": token}).encode()
        return client.environ("POST", scenario.path, body, "application/x-www-form-urlencoded", cookies=cookies), body
    return client.environ(scenario.method, scenario.path, cookies=cookies), b""


def count_rows(variant: str) -> int:
    from django.apps import apps

    return sum(apps.get_model(label).objects.count() for label in AUDIT_TABLES[variant])


class Server:
    """One variant's process for one round: answers the parent's commands, one JSON line each.

    Commands (one JSON object per line on stdin): ``{"op": "warm", "scenario": NAME}``
    (warm up, check the response, count the audit rows), ``{"op": "batch", "scenario": NAME}``
    (time one batch: wall and process CPU time per request, the rail-django
    variants' batches ending with ``security.flush()``), ``{"op": "done", "scenario": NAME}``
    (rows the scenario added) and ``{"op": "quit"}``.
    """

    def __init__(self, variant: str, db_path: str, scale: float) -> None:
        setup_django(variant, db_path)
        from django.core.handlers.wsgi import WSGIHandler

        self.variant, self.scale = variant, scale
        self.flush: Any = lambda: None
        self.drain: subprocess.Popen | None = None
        if variant == "rail-drain":
            self.drain = start_drain(db_path)
        if variant in ("rail", "rail-sync", "rail-drain"):
            from rail_django.security import security

            self.flush = security.flush
        if variant == "rail-drain":
            self.flush = flushed_by_drain
        self.client = Client(WSGIHandler())
        self.anonymous, self.token, self.logged_in = login_state(self.client)
        self.flush()
        self.prepared: dict[str, tuple[dict[str, Any], bytes, int, int]] = {}

    def warm(self, name: str) -> dict[str, Any]:
        scenario = next(s for s in SCENARIOS if s.name == name)
        env, body = request_for(scenario, self.client, self.anonymous, self.token, self.logged_in)
        per_batch = max(2, round(scenario.per_batch * self.scale))
        status, _, content = self.client.call(env, body)
        if status != scenario.status or (scenario.body_check and scenario.body_check.encode() not in content):
            raise SystemExit(f"{self.variant} {name}: status {status}, body {content[:300]!r}")
        for _ in range(max(1, per_batch // 4)):
            self.client.call(env, body)
        self.flush()
        self.prepared[name] = (env, body, per_batch, count_rows(self.variant))
        return {"per_batch": per_batch}

    def batch(self, name: str) -> dict[str, Any]:
        env, body, per_batch, _ = self.prepared[name]
        call = self.client.call
        cpu = time.process_time()
        started = time.perf_counter()
        for _ in range(per_batch):
            call(env, body)
        self.flush()
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        return {"wall_us": wall / per_batch * 1e6, "cpu_us": cpu / per_batch * 1e6, "requests": per_batch}

    def done(self, name: str) -> dict[str, Any]:
        self.flush()
        return {"rows_added": count_rows(self.variant) - self.prepared[name][3]}

    def serve(self, commands: Any, replies: Any) -> None:
        for line in commands:
            command = json.loads(line)
            if command["op"] == "quit":
                return
            reply = getattr(self, command["op"])(command["scenario"])
            replies.write(json.dumps(reply) + "\n")
            replies.flush()


#: Seconds between the drain's looks at the journal (a waiting flush is seen at the next look).
DRAIN_POLL = os.environ.get("BENCH_DRAIN_POLL", "0.005")


def flushed_by_drain() -> None:
    """The batch's flush: wait until the drain process has delivered what this process appended."""
    from rail_django.security import security

    if not security.flush():
        raise SystemExit("rail-drain: the drain process is not running")


def start_drain(db_path: str, db: str = "sqlite") -> subprocess.Popen:
    """``audit_management drain`` for rail-drain: its own process on the same database and journal."""
    return launch_drain({**os.environ, "BENCH_VARIANT": "rail-drain", "BENCH_DB": db, "BENCH_DB_NAME": db_path,
                         "DJANGO_SETTINGS_MODULE": "benchmarks.project.settings"})


def launch_drain(env: dict[str, str]) -> subprocess.Popen:
    """Start ``audit_management drain`` with ``env`` (this process's settings and journal directory) and
    return once it holds the journal's drain lock."""
    from rail_django.conf import get_config
    from rail_django.delivery.drain import drain_directory, drain_running

    drain = subprocess.Popen(
        [sys.executable, "-m", "django", "audit_management", "drain", "--poll", DRAIN_POLL, "--report-every", "3600"],
        cwd=ROOT, env=env, stdout=sys.stderr, stderr=sys.stderr,
    )
    directory = drain_directory(get_config())
    deadline = time.monotonic() + 60
    while not drain_running(directory):
        if drain.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"rail-drain: the drain process did not start (exit status {drain.poll()})")
        time.sleep(0.02)
    return drain


def stop_drain(drain: subprocess.Popen | None) -> None:
    if drain is None:
        return
    drain.send_signal(signal.SIGTERM)
    try:
        drain.wait(30)
    except subprocess.TimeoutExpired:
        drain.kill()
        drain.wait()


def serve(variant: str, template: str, scale: float) -> None:
    """Copy the template database, then answer commands until ``quit``."""
    work = Path(template).with_name(f"round-{variant}-{os.getpid()}.sqlite3")
    shutil.copyfile(template, work)
    replies = sys.stdout
    sys.stdout = sys.stderr  # only replies on the command channel
    if variant == "rail-drain":  # the drain process must read the journal this process writes
        os.environ["BENCH_JOURNAL_DIR"] = str(work.with_name(f"journal-{variant}-{os.getpid()}"))
    server = None
    try:
        server = Server(variant, str(work), scale)
        replies.write(json.dumps({"ready": variant}) + "\n")
        replies.flush()
        server.serve(sys.stdin, replies)
    finally:
        from django.db import connections

        if server is not None:
            stop_drain(server.drain)
        connections.close_all()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work}{suffix}").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare")
    prep.add_argument("--variant", required=True)
    prep.add_argument("--db", required=True)
    go = sub.add_parser("serve")
    go.add_argument("--variant", required=True)
    go.add_argument("--template", required=True)
    go.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.variant, args.db)
    else:
        serve(args.variant, args.template, args.scale)


if __name__ == "__main__":
    main()
