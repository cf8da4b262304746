"""Chains to attack: one keyed with HMAC (AUDIT_INTEGRITY_KEY), one signed with Ed25519 (AUDIT_INTEGRITY_SIGNING_KEY).

``chain`` gives each test a chain whose events also go to a fresh JSON-lines
file (the witness: checkpoints land there), and a ``verify`` that runs the
real command: with the HMAC key, or — for Ed25519 — with ``--public-key`` and
no secret in the settings at all, as an auditor would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings

HMAC_KEY = "integrity-attacks-key-0123456789abcdef"
TABLE = "rail_django_auditeventmodel"
STATE = "rail_django_auditchainstate"


def ed25519_pem() -> tuple[str, str]:
    """A new Ed25519 key pair as (private PEM, public PEM)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def sql(statement: str, params=()) -> list[tuple] | None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


#: (test, chain mode, with checkpoints, verify's verdict) of every attack verify caught, for the report.
_DETECTED: list[tuple[str, str, bool, str]] = []


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter):
    """Adds "attack -> detected by" to the reliability report (written first by tests/reliability/conftest.py)."""
    if not _DETECTED:
        return
    backend = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    lines = ["", "### Integrity attacks -> detected by", "",
             "| attack (test) | backend | chain | verify run | verdict |", "|---|---|---|---|---|"]
    for test, mode, witness, verdict in _DETECTED:
        name = test.split("::")[-1].split("[")[0].removeprefix("test_").replace("_", " ")
        lines.append(f"| {name} | {backend} | {mode} | {'with --checkpoints' if witness else 'database alone'} "
                     f"| {': '.join(verdict.split(': ')[:2])} |")
    terminalreporter.section("integrity attacks")
    for line in lines:
        terminalreporter.write_line(line)
    path = Path(settings.TEST_OUTPUT) / "reliability-report.md"
    try:
        with path.open("a") as report:
            report.write("\n".join(lines) + "\n")
    except OSError as exc:
        terminalreporter.write_line(f"(could not write {path}: {exc})")


@dataclass
class Chain:
    mode: str  # "hmac" | "ed25519"
    log: Path
    public_key: Path | None

    def verify(self, *, checkpoints: bool, extra: list[str] | None = None) -> str:
        """``audit_management verify`` as the auditor runs it; its output (raises CommandError on failure)."""
        args = ["audit_management", "verify", *(extra or [])]
        if checkpoints:
            args += ["--checkpoints", str(self.log)]
        out = StringIO()
        if self.public_key is None:
            call_command(*args, stdout=out)
            return out.getvalue()
        # The auditor holds the public key and nothing else.
        with override_settings(AUDIT_INTEGRITY_SIGNING_KEY=None, AUDIT_INTEGRITY_KEY=None):
            call_command(*args, "--public-key", str(self.public_key), stdout=out)
        return out.getvalue()

    def failure(self, *, checkpoints: bool, extra: list[str] | None = None) -> str:
        """The one-line error of a failing verify (and that it exits 1)."""
        with pytest.raises(CommandError) as failed:
            self.verify(checkpoints=checkpoints, extra=extra)
        assert failed.value.returncode == 1
        _DETECTED.append((os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0], self.mode, checkpoints,
                          str(failed.value).splitlines()[0]))
        return str(failed.value)

    def checkpoint(self) -> str:
        out = StringIO()
        call_command("audit_management", "checkpoint", stdout=out)
        return out.getvalue()


@pytest.fixture(params=["hmac", "ed25519"])
def chain(request, settings, tmp_path) -> Chain:
    settings.AUDIT_STORE_IN_FILE = True
    settings.AUDIT_LOG_FILE = log = tmp_path / "audit.log"
    settings.AUDIT_INTEGRITY_CHECKPOINT_SECONDS = 0  # tests publish checkpoints with the command
    if request.param == "hmac":
        settings.AUDIT_INTEGRITY_KEY = HMAC_KEY
        return Chain("hmac", log, None)
    private, public = ed25519_pem()
    settings.AUDIT_INTEGRITY_SIGNING_KEY = private
    (tmp_path / "audit-signing.pub.pem").write_text(public)
    return Chain("ed25519", log, tmp_path / "audit-signing.pub.pem")


class WitnessServer:
    """Another system: a loopback webhook receiver that appends each body it gets to a JSON-lines file."""

    def __init__(self, path: Path) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.path = path
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock, path.open("ab") as handle:
                    handle.write(body.rstrip(b"\n") + b"\n")
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/audit"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def witness(settings, tmp_path):
    """A webhook receiver on "another system" whose JSON-lines file ``verify --checkpoints`` can read."""
    from rail_django.security import security

    server = WitnessServer(tmp_path / "witness" / "received.jsonl")
    server.path.parent.mkdir()
    settings.AUDIT_WEBHOOK_URL = server.url
    settings.AUDIT_WEBHOOK_BACKOFF = 0.01
    yield server
    security.flush(timeout=30)
    server.close()
