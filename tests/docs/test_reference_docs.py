"""Every code block of the reference pages, run: install, events, configuration, delivery, deployment, integrity, graphql.

``test_every_block_is_exercised`` pins the list of blocks: a block added to
one of these pages fails it until a test here runs the new block. Settings
blocks are executed into a dict whose names must be real settings and pass
``manage.py check``; API blocks run against real requests, users, thread
pools, HTTP servers and the database, and their audit rows are asserted.

The contract page (``audit-logging.md``) shares three snippets with these
pages: its emit and ORM snippets are ``events.md``'s first and last blocks
(also copied in tests/security/test_emit.py), and its settings snippet,
copied below as ``SPEC_SETTINGS``, must mean what configuration.md's
defaults block means. Its GraphQL snippets run in tests/graphql/ and its
commands in tests/sample_project/test_operations.py.
"""

from __future__ import annotations

import base64
import configparser
import grp
import importlib.metadata
import io
import json
import logging
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest.mock import patch
from wsgiref.simple_server import WSGIRequestHandler, make_server

import graphene
import pytest
import requests
from django.conf import global_settings, settings
from django.contrib.auth.models import AnonymousUser, Group
from django.core.handlers.wsgi import WSGIRequest
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.db import connections, transaction
from django.http import HttpResponse
from django.test import Client, override_settings
from graphene_django.settings import DEFAULTS as GRAPHENE_DEFAULTS
from standardwebhooks.webhooks import WebhookVerificationError

from rail_django.capture.middleware import SecurityContextMiddleware
from rail_django.conf import DEFAULTS
from rail_django.delivery.dispatcher import dispatcher
from rail_django.security import EventType, security
from tests.conftest import IN_CI
from tests.docs.markdown_blocks import DOCS, block, blocks

ROOT = Path(__file__).resolve().parents[2]

EXERCISED = {
    "install.md": [
        ("bash", "pip install rail-django"),
        ("python", "INSTALLED_APPS"),
        ("bash", "python manage.py migrate rail_django"),
        ("bash", "python manage.py shell -c"),
    ],
    "events.md": [
        ("python", "outcome=Outcome.FAILURE"),
        ("python", "bind_actor(user)"),
        ("python", "ThreadPoolExecutor"),
        ("python", "@app.task"),
        ("python", "transaction.on_commit"),
        ("python", "AuditEvent.objects.filter"),
    ],
    "configuration.md": [
        ("python", "# settings.py — the defaults"),
        ("python", "RAIL_DJANGO_TRUSTED_PROXIES"),
    ],
    "delivery.md": [
        ("", "security.emit ──► build"),
        ("ini", "audit_management drain"),  # run in tests/drain/test_drain.py
        ("", "create 0640 app app"),
        ("python", "from standardwebhooks import Webhook"),
        ("python", "LOGGING = {"),  # run in the install project (test_install_blocks_make_a_working_project)
    ],
    "deployment.md": [],
    "integrity.md": [  # the last three run in tests/integrity/test_docs.py
        ("python", "AUDIT_INTEGRITY_KEY"),
        ("bash", "audit_management verify"),
        ("bash", "openssl genpkey -algorithm ed25519"),
        ("python", "AUDIT_INTEGRITY_SIGNING_KEY"),
        ("bash", "audit_management checkpoint"),
    ],
    "graphql.md": [
        ("python", "rail_django.security.graphql.GraphQLAuditMiddleware"),
        ("python", "class Query(AuditQuery"),
        ("python", "from graphene_django.views import GraphQLView"),
        ("python", "audited_query_fields"),
        ("python", "mutation_event_types"),
        ("python", "AuditGraphQLView.as_view"),
        ("graphql", "mutation LogFrontendAudit"),
        ("json", '"appName": "admin"'),
        ("javascript", "X-CSRFToken"),
        ("graphql", "query RecentFailures"),
    ],
}

# The settings snippet of the contract page (audit-logging.md), verbatim.
SPEC_SETTINGS = '''
# settings.py
GRAPHQL_ENABLE_AUDIT_LOGGING = True
AUDIT_STORE_IN_DATABASE = True
AUDIT_STORE_IN_FILE = True
AUDIT_WEBHOOK_URL = None
AUDIT_RETENTION_DAYS = 90

AUDIT_ALERT_THRESHOLDS = {
    "failed_logins_per_ip": 10,
    "failed_logins_per_user": 5,
    "suspicious_activity_window": 300,
}
'''


def test_every_block_is_exercised():
    for page, expected in EXERCISED.items():
        found = blocks(page)
        assert [lang for lang, _ in found] == [lang for lang, _ in expected], page
        for (_, code), (_, marker) in zip(found, expected, strict=True):
            assert marker in code, (page, marker)


# -- helpers -----------------------------------------------------------------------------------
def settings_block(code: str, **namespace: Any) -> dict[str, Any]:
    """Execute a settings block; the settings (UPPER_CASE names) it defines."""
    scope = dict(namespace)
    exec(code, scope)
    return {name: value for name, value in scope.items() if name.isupper() and name not in namespace}


def assert_real_settings(values: dict[str, Any]) -> None:
    """Every name is a rail-django setting, a Django setting, or graphene-django's ``GRAPHENE``."""
    assert values
    for name, value in values.items():
        if name == "GRAPHENE":
            assert set(value) <= set(GRAPHENE_DEFAULTS), sorted(set(value) - set(GRAPHENE_DEFAULTS))
        else:
            assert name in DEFAULTS or hasattr(global_settings, name), f"{name} is not a setting"


def assert_check_passes(values: dict[str, Any]) -> None:
    """``manage.py check`` with these settings (raises ``SystemCheckError`` on any error)."""
    with override_settings(**values):
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())


def without_ellipsis(items: list) -> list:
    """A list from a block that writes ``...`` for "the entries you already have"."""
    return [item for item in items if item is not ...]


def skip_or_fail(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}, and CI=true forbids skipping", pytrace=False)
    pytest.skip(reason)


def through_middleware(view, request):
    """Run ``view`` behind the real ``SecurityContextMiddleware``, as Django would."""
    return SecurityContextMiddleware(view)(request)


def test_check_helper_fails_on_a_bad_setting():
    with pytest.raises(SystemCheckError, match="rail_django.E008"):
        assert_check_passes({"AUDIT_RETENTION_DAYS": 0})


# -- install.md --------------------------------------------------------------------------------
def test_pip_line_installs_this_distribution_with_its_dependencies():
    command, _, comment = block("install.md", "bash", "pip install rail-django").strip().partition("#")
    assert command.split() == ["pip", "install", "rail-django"]
    assert comment.strip() == "or, from a checkout: pip install -e ."
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["metadata"]["name"] == "rail-django"  # what `pip install -e .` in a checkout installs
    distribution = importlib.metadata.distribution("rail-django")
    runtime = {re.split(r"[<>=!~ ;\[]", r)[0].lower() for r in distribution.requires if "extra ==" not in r}
    # "It brings graphene-django, graphql-core, python-ipware, user-agents, requests, orjson and cryptography with it."
    assert runtime == {"django", "graphene-django", "graphql-core", "python-ipware", "user-agents", "requests", "orjson", "cryptography"}
    import rail_django

    assert Path(rail_django.__file__).resolve().is_relative_to(ROOT)


PREAMBLE = '''
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "docs-install-test-" + "x" * 40
ALLOWED_HOSTS = ["testserver"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
ROOT_URLCONF = "myproject.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
'''

INSTALL_URLS = '''
from django.contrib.auth import authenticate
from django.http import HttpResponse
from django.urls import path


def attempt(request):
    authenticate(request, username="ana", password="not-her-password")
    return HttpResponse("tried")


urlpatterns = [path("attempt/", attempt)]
'''

INSTALL_DRIVER = '''
import json
import logging
import os
import socket

import django

os.environ["DJANGO_SETTINGS_MODULE"] = "myproject.settings"
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, override_settings

from rail_django.models import get_audit_event_model
from rail_django.security import EventType, security

call_command("migrate", verbosity=0)  # the project's own apps (auth, sessions), as an existing project has them
get_user_model().objects.create_user("ana", password="ana-password-123")
client = Client(REMOTE_ADDR="198.51.100.20")
attempt = client.get("/attempt/")
client.login(username="ana", password="ana-password-123")
client.logout()

# delivery.md's LOGGING block routes rail_django.audit: make the webhook fail once and see it reported.
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
with override_settings(AUDIT_WEBHOOK_URL=f"http://127.0.0.1:{closed_port}/hook", AUDIT_WEBHOOK_MAX_RETRIES=0):
    security.emit(EventType.SECURITY_ALERT, action="probe")
    security.flush(timeout=30)
security.flush(timeout=30)
logger = logging.getLogger("rail_django.audit")
print(json.dumps({
    "status": attempt.status_code,
    "header": attempt.headers.get("X-Correlation-ID"),
    "events": [[r.event_type, r.username, r.correlation_id] for r in get_audit_event_model().objects.order_by("id")],
    "handlers": [[type(h).__name__, h.level] for h in logger.handlers],
    "level": logger.level,
}))
'''


def _manage(tmp_path: Path, env: dict[str, str], words: list[str]) -> subprocess.CompletedProcess:
    assert words[:2] == ["python", "manage.py"], words
    result = subprocess.run(
        [sys.executable, "manage.py", *words[2:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.sqlite_only  # a project of its own, on its own SQLite file
def test_install_blocks_make_a_working_project(tmp_path):
    """install.md's settings, commands and shell check, verbatim, in a new project; with delivery.md's LOGGING."""
    package = tmp_path / "myproject"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(
        PREAMBLE + block("install.md", "python", "INSTALLED_APPS") + block("delivery.md", "python", "LOGGING = {")
    )
    (package / "urls.py").write_text(INSTALL_URLS)
    (tmp_path / "manage.py").write_text(
        "import os, sys\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'myproject.settings')\n"
        "from django.core.management import execute_from_command_line\nexecute_from_command_line(sys.argv)\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(ROOT)

    commands = block("install.md", "bash", "python manage.py migrate rail_django").strip().splitlines()
    migrate, check = (_manage(tmp_path, env, shlex.split(line, comments=True)) for line in commands)
    assert "Applying rail_django.0001_initial... OK" in migrate.stdout
    assert "System check identified no issues" in check.stdout

    shell = _manage(tmp_path, env, shlex.split(block("install.md", "bash", "python manage.py shell -c")))
    assert shell.stdout.strip().endswith("system.config.change anonymous")

    (tmp_path / "drive.py").write_text(INSTALL_DRIVER)
    run = subprocess.run([sys.executable, "drive.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    types = ["system.config.change", "auth.account.created", "auth.login.failure", "auth.login.success",
             "auth.logout", "security.alert"]  # create_user records auth.account.created (issue 14)
    assert [e[0] for e in out["events"]] == types
    # "every response carries an X-Correlation-ID header that is also stored on each event of that request"
    assert out["status"] == 200 and out["events"][2][2] == out["header"] and len(out["header"]) >= 16
    assert [e[1] for e in out["events"][3:5]] == ["ana", "ana"]
    # ... and as a JSON line in BASE_DIR / "logs" / "audit.log"
    lines = (tmp_path / "logs" / "audit.log").read_text().splitlines()
    assert [json.loads(line)["event_type"] for line in lines] == types
    # The LOGGING block: rail_django.audit writes WARNING and above to a console handler.
    assert out["handlers"] == [["StreamHandler", logging.NOTSET]] and out["level"] == logging.WARNING
    assert run.stderr.count("Audit webhook gave up on event") == 1, run.stderr


# -- events.md ---------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_emit_block_records_a_failed_login(rf, audit_model):
    request = rf.post("/login/", REMOTE_ADDR="192.0.2.44", HTTP_USER_AGENT="DocsBrowser/2")
    exec(block("events.md", "python", "outcome=Outcome.FAILURE"), {"request": request, "username": "mallory"})
    row = audit_model.objects.get()
    assert (row.event_type, row.severity, row.success) == ("auth.login.failure", "warning", False)
    assert (row.client_ip, row.user_agent, row.request_path) == ("192.0.2.44", "DocsBrowser/2", "/login/")
    assert row.error_message == "Invalid credentials"
    assert row.additional_data["action"] == "Login attempt failed"
    assert row.additional_data["context"] == {"username_attempted": "mallory"}


@pytest.mark.django_db(transaction=True)
def test_bind_actor_block_names_the_token_user(rf, audit_model, user):
    namespace = {"verify_token": lambda request: user}
    exec(block("events.md", "python", "bind_actor(user)"), namespace)
    request = rf.post("/api/token/", HTTP_AUTHORIZATION="Bearer abc.def.ghi")
    request.user = AnonymousUser()  # a token API: the session knows nobody

    def view(request):
        namespace["api_view"](request)
        return HttpResponse()

    response = through_middleware(view, request)
    row = audit_model.objects.get()
    assert (row.event_type, row.username, row.user_id) == ("auth.token.issued", "alice", str(user.pk))
    assert row.additional_data["action"] == "Token issued"
    assert row.correlation_id == response["X-Correlation-ID"]


@pytest.mark.django_db(transaction=True)
def test_thread_pool_block_keeps_the_request_context(rf, audit_model, user):
    threads = set()

    def send_invoices(batch):
        threads.add(threading.get_ident())
        for number in batch:
            security.emit(EventType.DATA_EXPORT, resource_type="invoice", resource_id=number)

    def documented(request):
        exec(block("events.md", "python", "ThreadPoolExecutor"), {"send_invoices": send_invoices, "batch": [7, 8]})
        return HttpResponse()

    def without_propagate(request):
        with ThreadPoolExecutor() as pool:
            pool.submit(send_invoices, [9])
        return HttpResponse()

    request = rf.post("/invoices/send/")
    request.user = user
    response = through_middleware(documented, request)
    through_middleware(without_propagate, request)
    assert threading.get_ident() not in threads
    kept, lost = list(audit_model.objects.order_by("id")[:2]), audit_model.objects.order_by("id").last()
    assert [r.additional_data["resource"]["id"] for r in kept] == ["7", "8"]
    assert {(r.correlation_id, r.username, r.request_path) for r in kept} == {
        (response["X-Correlation-ID"], "alice", "/invoices/send/")
    }
    # What propagate() is for: a bare submit loses the request.
    assert (lost.correlation_id, lost.username, lost.request_path) == (None, None, "")


class FakeCelery:
    """``app.task`` as far as the docs use it: ``delay`` sends JSON arguments to a worker."""

    def __init__(self):
        self.sent: list[dict] = []

    def task(self, func):
        def delay(*args, **kwargs):
            self.sent.append(json.loads(json.dumps({"args": args, "kwargs": kwargs})))  # a JSON broker

        func.delay = delay
        return func


@pytest.mark.django_db(transaction=True)
def test_celery_block_carries_the_context_into_the_task(rf, audit_model, user):
    code = block("events.md", "python", "@app.task")
    imports, rest = code.split("# in the view:\n")
    in_view, in_task = rest.split("# in the task:\n")
    app = FakeCelery()
    tasks_module = {"app": app}
    exec(imports + in_task, tasks_module)

    def view(request):
        exec(in_view, {**tasks_module, "report_id": 42})
        return HttpResponse()

    request = rf.post("/reports/42/export/", REMOTE_ADDR="203.0.113.5")
    request.user = user
    response = through_middleware(view, request)
    [message] = app.sent
    assert audit_model.objects.count() == 0  # nothing happens until a worker runs the task

    worker = threading.Thread(target=lambda: tasks_module["export_task"](*message["args"], **message["kwargs"]))
    worker.start()
    worker.join(30)
    row = audit_model.objects.get()
    assert (row.event_type, row.additional_data["resource"]) == ("data.export", {"type": "report", "name": None, "id": "42"})
    assert row.correlation_id == response["X-Correlation-ID"]
    assert (row.username, row.client_ip, row.request_path) == ("alice", "203.0.113.5", "/reports/42/export/")


@pytest.mark.django_db(transaction=True)
def test_on_commit_block_records_only_committed_work(audit_model):
    code = block("events.md", "python", "transaction.on_commit")
    kept = Group.objects.create(name="order 12")
    kept_id = kept.pk
    exec(code, {"order": kept, "order_id": kept_id})
    assert not Group.objects.filter(pk=kept_id).exists()
    row = audit_model.objects.get()
    assert (row.event_type, row.additional_data["resource"]["id"]) == ("data.delete", str(kept_id))

    undone = Group.objects.create(name="order 13")
    undone_id = undone.pk
    with pytest.raises(RuntimeError), transaction.atomic():
        exec(code, {"order": undone, "order_id": undone_id})
        raise RuntimeError("the surrounding work failed")
    assert Group.objects.filter(pk=undone_id).exists()
    assert audit_model.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_reading_block_lists_failures_newest_first(audit_model):
    from rail_django.security import Outcome

    security.emit(EventType.AUTH_LOGIN_FAILURE, outcome=Outcome.FAILURE, action="first")
    security.emit(EventType.AUTH_LOGIN_SUCCESS)
    security.emit(EventType.DATA_UPDATE, outcome=Outcome.DENIED, action="second")
    namespace: dict = {}
    exec(block("events.md", "python", "AuditEvent.objects.filter"), namespace)
    assert namespace["AuditEvent"] is audit_model
    assert [row.additional_data["action"] for row in namespace["recent"]] == ["second", "first"]


# -- configuration.md --------------------------------------------------------------------------
def test_defaults_block_is_the_defaults_and_passes_check(settings):
    values = settings_block(block("configuration.md", "python", "# settings.py — the defaults"))
    assert_real_settings(values)
    for name, value in values.items():
        default = DEFAULTS[name]
        assert value == (default() if callable(default) else default), name
    assert_check_passes(values)
    assert settings_block(SPEC_SETTINGS) == values  # the contract's snippet says the same


_SETTING_ROW = re.compile(r"^\| `(?P<name>[A-Z_]+)` \| `(?P<default>[^`]+)`[^|]*\| [^|]+ \| (?P<checks>[^|]+) \|$", re.M)


def test_every_setting_is_documented_with_its_default_and_check():
    text = (DOCS / "configuration.md").read_text()
    rows = {m["name"]: m for m in _SETTING_ROW.finditer(text)}
    assert set(rows) == set(DEFAULTS) - {"RAIL_DJANGO_GRAPHQL"}
    assert "`RAIL_DJANGO_GRAPHQL`" in text and "`RAIL_DJANGO_GRAPHQL`" in (DOCS / "graphql.md").read_text()
    sources = "".join(p.read_text() for p in (ROOT / "rail_django").rglob("*.py"))
    for name, row in rows.items():
        default = DEFAULTS[name]
        documented = eval(row["default"], {"BASE_DIR": Path(settings.BASE_DIR)})
        assert documented == (default() if callable(default) else default), name
        for check in re.findall(r"E\d{3}", row["checks"]):
            assert f'"rail_django.{check}"' in sources, (name, check)


@pytest.mark.django_db(transaction=True)
def test_trusted_proxies_block(rf, audit_model):
    values = settings_block(block("configuration.md", "python", "RAIL_DJANGO_TRUSTED_PROXIES"))
    assert_real_settings(values)
    assert_check_passes(values)
    forwarded = "6.6.6.6, 203.0.113.9, 10.2.3.4"  # forged by the client, then the balancer, then an inner proxy
    with override_settings(**values):
        security.emit(EventType.DATA_READ, request=rf.get("/", REMOTE_ADDR="172.16.0.5", HTTP_X_FORWARDED_FOR=forwarded))
        security.emit(EventType.DATA_READ, request=rf.get("/", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR=forwarded))
    proxied, direct = audit_model.objects.order_by("id")
    assert (proxied.client_ip, proxied.additional_data["remote_addr"]) == ("203.0.113.9", "172.16.0.5")
    assert (direct.client_ip, direct.additional_data["remote_addr"]) == ("192.0.2.1", "192.0.2.1")


# -- delivery.md -------------------------------------------------------------------------------
SIGNING_SECRET = "whsec_" + base64.b64encode(b"reference-docs-signing-key-32-b!").decode()


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class DocumentedReceiver:
    """A webhook receiver on a loopback port that runs delivery.md's snippet on a Django request."""

    def __init__(self, snippet: str, secret: str):
        assert snippet.count('"whsec_..."') == 1
        code = snippet.replace('"whsec_..."', repr(secret))
        self.payloads: list[Any] = []
        self.refused: list[Exception] = []

        def app(environ, start_response):
            namespace = {"request": WSGIRequest(environ)}
            try:
                exec(code, namespace)
            except WebhookVerificationError as exc:
                self.refused.append(exc)
                start_response("400 Bad Request", [("Content-Length", "0")])
                return [b""]
            self.payloads.append(namespace["payload"])
            start_response("204 No Content", [])
            return [b""]

        self.server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
        self.url = f"http://127.0.0.1:{self.server.server_port}/audit-hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def documented_receiver(settings, audit_log_file):
    receiver = DocumentedReceiver(block("delivery.md", "python", "from standardwebhooks import Webhook"), SIGNING_SECRET)
    settings.AUDIT_WEBHOOK_URL = receiver.url
    settings.AUDIT_WEBHOOK_SECRET = SIGNING_SECRET
    settings.AUDIT_WEBHOOK_BACKOFF = 0.01
    yield receiver
    security.flush(timeout=30)
    receiver.close()


@pytest.mark.django_db(transaction=True)
def test_an_event_leaves_through_the_diagrams_sinks_and_verifies_at_the_receiver(
    documented_receiver, audit_log_file, audit_model
):
    diagram = block("delivery.md", "", "security.emit ──► build")
    sinks = re.findall(r"──► (database rows|JSON-lines file|webhook \(own thread\))", diagram)
    assert sinks == ["database rows", "JSON-lines file", "webhook (own thread)"]
    assert [sink.name for sink in dispatcher.sinks()] == ["database", "file", "webhook"]

    event = security.emit(EventType.SECURITY_ALERT, action="Too many failures", context={"api_token": "tok-123"})
    assert security.flush(timeout=30)
    [payload] = documented_receiver.payloads  # verified by the documented receiver code
    [line] = audit_log_file.read_text().splitlines()
    row = audit_model.objects.get()
    assert payload == json.loads(line)  # "the same object as a file line"
    assert payload["event_id"] == str(event.event_id) == str(row.event_id)
    # redacted before delivery, so every sink has the mask
    assert payload["context"] == row.additional_data["context"] == {"api_token": "***REDACTED***"}


@pytest.mark.django_db(transaction=True)
def test_the_receiver_snippet_refuses_a_tampered_delivery(documented_receiver, monkeypatch):
    sent = []
    real_post = requests.Session.post

    def spy(session, url, data=None, **kwargs):
        sent.append((data, dict(kwargs.get("headers") or {})))
        return real_post(session, url, data=data, **kwargs)

    monkeypatch.setattr(requests.Session, "post", spy)
    security.emit(EventType.SECURITY_ALERT, action="Too many failures")
    assert security.flush(timeout=30)
    monkeypatch.undo()
    assert len(documented_receiver.payloads) == 1 and sent, "the webhook sink posts with requests"
    body, headers = sent[0]
    body = body if isinstance(body, bytes) else body.encode()
    forged = requests.post(documented_receiver.url, data=body.replace(b"Too many", b"No"), headers=headers, timeout=10)
    assert forged.status_code == 400
    assert len(documented_receiver.refused) == 1 and len(documented_receiver.payloads) == 1


def _logrotate_config(code: str) -> tuple[str, list[list[str]]]:
    lines = [line.strip() for line in code.strip().splitlines()]
    assert lines[0].endswith(" {") and lines[-1] == "}"
    return lines[0][:-2], [line.split() for line in lines[1:-1]]


def test_logrotate_block_rotates_with_create():
    path, directives = _logrotate_config(block("delivery.md", "", "create 0640 app app"))
    assert path.endswith("/logs/audit.log")  # the default AUDIT_LOG_FILE under BASE_DIR
    assert directives == [["daily"], ["rotate", "30"], ["compress"], ["delaycompress"], ["create", "0640", "app", "app"]]
    assert int(directives[-1][1], 8) == 0o640


@pytest.mark.sqlite_only  # files only: no database
def test_logrotate_block_run_by_logrotate_while_the_sink_writes(settings, audit_log_file, tmp_path):
    logrotate = shutil.which("logrotate") or ("/usr/sbin/logrotate" if Path("/usr/sbin/logrotate").exists() else None)
    if logrotate is None:
        skip_or_fail("logrotate is not installed (apt-get install -y logrotate; 'make test' does it)")
    settings.AUDIT_STORE_IN_DATABASE = False
    code = block("delivery.md", "", "create 0640 app app")
    path, _ = _logrotate_config(code)
    owner, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    config = tmp_path / "audit.logrotate"
    config.write_text(code.replace(path, str(audit_log_file)).replace("create 0640 app app", f"create 0640 {owner} {group}"))

    security.emit(EventType.DATA_READ, action="before rotation")
    rotated = subprocess.run(
        [logrotate, "--force", "--state", str(tmp_path / "state"), str(config)], capture_output=True, text=True
    )
    assert rotated.returncode == 0, rotated.stderr
    assert oct(audit_log_file.stat().st_mode & 0o777) == "0o640" and audit_log_file.read_text() == ""
    security.emit(EventType.DATA_READ, action="after rotation")
    backup = audit_log_file.with_name("audit.log.1")  # delaycompress: the newest backup stays plain
    assert [json.loads(line)["action"] for line in backup.read_text().splitlines()] == ["before rotation"]
    assert [json.loads(line)["action"] for line in audit_log_file.read_text().splitlines()] == ["after rotation"]
    assert oct(audit_log_file.stat().st_mode & 0o777) == "0o640"


# -- integrity.md ------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_integrity_blocks_seal_verify_and_catch_an_edit(monkeypatch, audit_model):
    monkeypatch.setenv("AUDIT_INTEGRITY_KEY", "integrity-key-from-a-secret-store")
    values = settings_block(block("integrity.md", "python", "AUDIT_INTEGRITY_KEY"))
    assert values == {"AUDIT_INTEGRITY_KEY": "integrity-key-from-a-secret-store"}
    assert_real_settings(values)
    assert_check_passes(values)
    commands = [shlex.split(line, comments=True) for line in block("integrity.md", "bash", "verify --since").strip().splitlines()]
    assert [words[:3] for words in commands] == [
        ["python", "manage.py", "migrate"], *[["python", "manage.py", "audit_management"]] * 2
    ]

    with override_settings(**values):
        for n in range(3):
            security.emit(EventType.DATA_UPDATE, resource_type="order", resource_id=n)
        outputs = []
        for words in commands:
            out = io.StringIO()
            call_command(*words[2:], stdout=out)
            outputs.append(out.getvalue())
        assert "Integrity chain OK: 3 events verified" in outputs[1]
        assert "Integrity chain OK" in outputs[2]

        table = connections["default"].ops.quote_name(audit_model._meta.db_table)
        with connections["default"].cursor() as cursor:  # someone with SQL access, without the key
            cursor.execute(f"UPDATE {table} SET username = %s WHERE id = %s", ["mallory", audit_model.objects.first().pk])
        with pytest.raises(CommandError, match="Integrity check FAILED: changed at sequence 1") as failed:
            call_command(*commands[1][2:], stdout=io.StringIO())
        assert failed.value.returncode == 1  # `manage.py` exits 1


# -- graphql.md --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def myproject(tmp_path_factory):
    """graphql.md's schema and urls blocks as the ``myproject`` package of a project."""
    root = tmp_path_factory.mktemp("graphql-docs")
    package = root / "myproject"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "schema.py").write_text(block("graphql.md", "python", "class Query(AuditQuery"))
    (package / "urls.py").write_text(block("graphql.md", "python", "from graphene_django.views import GraphQLView"))
    audited_urls, audited_settings = block("graphql.md", "python", "AuditGraphQLView.as_view").split("# settings.py\n")
    (package / "audited_urls.py").write_text(audited_urls)
    sys.path.insert(0, str(root))
    try:
        yield {"audited_settings": audited_settings}
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name == "myproject" or name.startswith("myproject.")]:
            del sys.modules[name]


def graphql_setup() -> dict[str, Any]:
    values = settings_block(block("graphql.md", "python", "rail_django.security.graphql.GraphQLAuditMiddleware"))
    assert_real_settings(values)
    return values


@contextmanager
def graphene_project(urlconf: str = "myproject.urls", graphene: dict | None = None, **more: Any) -> Iterator[None]:
    """Serve ``urlconf`` with the ``GRAPHENE`` setting of graphql.md's setup block (or ``graphene``).

    graphene-django's view module keeps the settings object it imported, so a
    changed ``GRAPHENE`` setting is handed to it here, as a project's
    settings module would at start-up.
    """
    with override_settings(GRAPHENE=graphene or graphql_setup()["GRAPHENE"], ROOT_URLCONF=urlconf, **more):
        import graphene_django.settings
        import graphene_django.views

        with patch.object(graphene_django.views, "graphene_settings", graphene_django.settings.graphene_settings):
            yield


def logged_in(client: Client, user: Any) -> Client:
    with override_settings(GRAPHQL_ENABLE_AUDIT_LOGGING=False):  # no login event in the rows under test
        client.force_login(user)
    return client


@pytest.fixture
def superuser_client(django_user_model):
    return logged_in(Client(), django_user_model.objects.create_superuser("root", "root@example.com", "root-pw-123"))


def post_graphql(client: Client, query: str, variables: dict | None = None, path: str = "/graphql/", **extra):
    body = json.dumps({"query": query, "variables": variables or {}})
    return client.post(path, body, content_type="application/json", **extra)


@pytest.mark.django_db(transaction=True)
def test_setup_blocks_serve_the_frontend_mutation_behind_csrf(myproject, audit_model, user):
    values = graphql_setup()
    # The apps and middleware the block names are this project's, in that order.
    assert set(without_ellipsis(values["INSTALLED_APPS"])) <= set(settings.INSTALLED_APPS)
    documented_middleware = without_ellipsis(values["MIDDLEWARE"])
    assert [m for m in settings.MIDDLEWARE if m in documented_middleware] == documented_middleware
    assert_check_passes({"GRAPHENE": values["GRAPHENE"], "ROOT_URLCONF": "myproject.urls"})
    mutation = block("graphql.md", "graphql", "mutation LogFrontendAudit")
    variables = json.loads(block("graphql.md", "json", '"appName": "admin"'))

    client = logged_in(Client(enforce_csrf_checks=True), user)
    with graphene_project():
        assert client.get("/graphql/", HTTP_ACCEPT="text/html").status_code == 200  # GraphiQL; sets csrftoken
        fields = post_graphql(client, "{ __schema { queryType { fields { name } } mutationType { fields { name } } } }",
                              HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value).json()["data"]["__schema"]
        assert post_graphql(client, mutation, variables).status_code == 403  # no X-CSRFToken header
        answer = post_graphql(client, mutation, variables, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert answer.json() == {"data": {"logFrontendAudit": {"ok": True, "error": None}}}
    # The schema served is the block's: AuditQuery's and AuditMutation's fields, nothing else.
    assert [f["name"] for f in fields["queryType"]["fields"]] == ["auditEvents", "auditEvent"]
    assert [f["name"] for f in fields["mutationType"]["fields"]] == ["logFrontendAudit"]
    # The refused POST is a CSRF failure (security.suspicious.request, issue 14); then one event for the
    # mutation: the middleware adds none for logFrontendAudit.
    csrf, row = audit_model.objects.order_by("id")
    assert (csrf.event_type, csrf.additional_data["context"]["kind"]) == ("security.suspicious.request", "csrf")
    assert (row.event_type, row.severity, row.username) == ("ui.action", "warning", "alice")
    context = row.additional_data["context"]
    assert (context["app_name"], context["model_name"], context["component"]) == ("admin", "Order", "OrderApprovalDialog")
    assert context["metadata"] == {"orderId": "123"} and context["severity_requested"] == "medium"
    assert row.additional_data["action"] == "approve admin.Order"


@pytest.mark.django_db(transaction=True)
def test_audited_query_fields_block(myproject, audit_model, superuser_client):
    values = settings_block(block("graphql.md", "python", "audited_query_fields"))
    assert_real_settings(values)
    assert_check_passes(values)
    with graphene_project(**values):
        listed = post_graphql(superuser_client, "query ExportOrders { auditEvents(first: 1) { totalCount } }")
        unlisted = post_graphql(superuser_client, "query Latest { auditEvents(first: 1) { totalCount } }")
    assert "errors" not in listed.json() and "errors" not in unlisted.json()
    row = audit_model.objects.get()
    assert (row.event_type, row.additional_data["resource"]["name"]) == ("data.read", "ExportOrders")
    assert row.additional_data["context"]["operation_name"] == "ExportOrders"


class _Done(graphene.Mutation):
    ok = graphene.Boolean()

    def mutate(root, info):
        return _Done(ok=True)


@pytest.mark.django_db(transaction=True)
def test_mutation_event_types_block(myproject, audit_model, superuser_client):
    values = settings_block(block("graphql.md", "python", "mutation_event_types"))
    assert_real_settings(values)
    assert_check_passes(values)
    from myproject.schema import Mutation, Query

    class OrdersMutation(Mutation):
        approve_order = _Done.Field()
        grant_role = _Done.Field()
        export_customers = _Done.Field()

    schema = graphene.Schema(query=Query, mutation=OrdersMutation)
    graphene_settings = {**graphql_setup()["GRAPHENE"], "SCHEMA": schema}
    with graphene_project(graphene=graphene_settings, **values):
        for field in ("approveOrder", "grantRole", "exportCustomers"):
            assert post_graphql(superuser_client, f"mutation {{ {field} {{ ok }} }}").json() == {"data": {field: {"ok": True}}}
    rows = audit_model.objects.order_by("id")
    assert [(r.event_type, r.additional_data["context"]["root_fields"]) for r in rows] == [
        ("data.update", ["approveOrder"]), ("authz.role.assigned", ["grantRole"]), ("data.export", ["exportCustomers"])
    ]


@pytest.mark.django_db(transaction=True)
def test_audit_view_block_records_rejected_operations(myproject, audit_model, superuser_client):
    values = settings_block(myproject["audited_settings"])
    assert_real_settings(values)
    assert_check_passes(values)
    with graphene_project("myproject.audited_urls", **values):
        answer = post_graphql(superuser_client, "query Broken { noSuchField }")
    assert answer.status_code == 400
    row = audit_model.objects.get()
    assert (row.event_type, row.success, row.username) == ("query.validation.failed", False, "root")
    assert row.additional_data["context"]["operation_name"] == "Broken"
    assert "noSuchField" in row.error_message


NODE_BROWSER = '''
// What a browser page has: a csrftoken cookie script can read, cookies sent with same-origin fetch().
const [BASE, CSRF, SESSION] = process.argv.slice(2);
globalThis.document = {cookie: `csrftoken=${CSRF}`};
const browserFetch = globalThis.fetch;
globalThis.fetch = async (url, options) => {
  const headers = {...options.headers, Cookie: `csrftoken=${CSRF}; sessionid=${SESSION}`};
  const response = await browserFetch(new URL(url, BASE), {...options, headers});
  console.log(JSON.stringify({status: response.status, body: await response.clone().json()}));
  return response;
};
'''


@pytest.mark.sqlite_only  # node and a live server; the view and mutation run on every backend above
@pytest.mark.django_db(transaction=True)
def test_javascript_block_records_from_a_page(myproject, live_server, audit_model, user, tmp_path):
    node = shutil.which("node")
    if node is None:
        skip_or_fail("node is not installed (apt-get install -y nodejs; 'make test' does it)")
    query = block("graphql.md", "graphql", "mutation LogFrontendAudit")
    variables = block("graphql.md", "json", '"appName": "admin"')
    script = tmp_path / "page.mjs"
    script.write_text(
        NODE_BROWSER
        + f"const LOG_FRONTEND_AUDIT = {json.dumps(query)};\nconst {{input}} = {variables};\n"
        + block("graphql.md", "javascript", "X-CSRFToken")
    )
    client = logged_in(Client(), user)
    with graphene_project():
        csrf = requests.get(f"{live_server.url}/graphql/", headers={"Accept": "text/html"}, timeout=30).cookies["csrftoken"]
        run = subprocess.run(
            [node, str(script), live_server.url, csrf, client.cookies["sessionid"].value],
            capture_output=True, text=True, timeout=60,
        )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"status": 200, "body": {"data": {"logFrontendAudit": {"ok": True, "error": None}}}}
    row = audit_model.objects.get()
    assert (row.event_type, row.username, row.additional_data["context"]["component"]) == (
        "ui.action", "alice", "OrderApprovalDialog"
    )


@pytest.mark.django_db(transaction=True)
def test_recent_failures_query_block(myproject, audit_model, superuser_client, client, user):
    from rail_django.security import Outcome

    security.emit(EventType.AUTH_LOGIN_FAILURE, outcome=Outcome.FAILURE, action="first failure")
    security.emit(EventType.AUTH_LOGIN_SUCCESS)
    security.emit(EventType.DATA_UPDATE, outcome=Outcome.FAILURE, error="boom", action="second failure")
    query = block("graphql.md", "graphql", "query RecentFailures")
    logged_in(client, user)
    with graphene_project():
        answer = post_graphql(superuser_client, query, {"after": None}).json()
        refused = post_graphql(client, query, {"after": None}).json()
    assert "errors" not in answer, answer
    page = answer["data"]["auditEvents"]
    assert page["totalCount"] == 2 and page["pageInfo"]["hasNextPage"] is False
    assert [(i["action"], i["outcome"], i["success"]) for i in page["items"]] == [
        ("second failure", "failure", False), ("first failure", "failure", False)
    ]
    assert page["items"][0]["errorMessage"] == "boom" and page["items"][0]["eventType"] == "data.update"
    assert refused["errors"][0]["message"] == (
        "You do not have permission to read audit events (rail_django.view_auditeventmodel)."
    )
