"""Shared fixtures; and the rule for database servers: skip locally, never in CI."""

from __future__ import annotations

import os
import socket

import pytest
from django.conf import settings

from rail_django.delivery.dispatcher import dispatcher

IN_CI = os.environ.get("CI", "").lower() == "true"
_SERVERS = {"postgresql": ("127.0.0.1", 5432), "mysql": ("127.0.0.1", 3306)}


def server_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    """Skip (locally) or fail (CI=true) when a server a test needs is not running."""
    if server_answers(host, port):
        return
    message = f"{name} is not running on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message}, and CI=true forbids skipping", pytrace=False)
    pytest.skip(f"{message} (start it to run these tests; CI runs them)")


def pytest_collection_modifyitems(config, items):
    backend = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    if backend in _SERVERS and not server_answers(*_SERVERS[backend]):
        if IN_CI:
            raise pytest.UsageError(f"CI=true but the {backend} server at {_SERVERS[backend]} is not running")
        skip = pytest.mark.skip(reason=f"{backend} server not running on {_SERVERS[backend]} (CI runs these)")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _stop_writer_before_test_database_is_dropped(django_db_setup, django_db_blocker):
    yield
    # The writer's connections would keep PostgreSQL from dropping the test database.
    dispatcher.shutdown(timeout=10)


@pytest.fixture(autouse=True)
def _isolated_audit_delivery(settings, tmp_path):
    """Each test has its own journal and starts and ends with nothing queued, so events never leak."""
    dispatcher.flush(timeout=30)
    settings.AUDIT_JOURNAL_DIR = tmp_path / "audit-journal"
    yield
    dispatcher.flush(timeout=30)


@pytest.fixture
def audit_model():
    from rail_django.models import get_audit_event_model

    return get_audit_event_model()


@pytest.fixture
def audit_log_file(settings, tmp_path):
    """A fresh JSON-lines file for this test."""
    path = tmp_path / "audit" / "audit.log"
    settings.AUDIT_LOG_FILE = path
    return path


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="correct-horse-battery")
