"""Celery with a real broker (Redis) and a real worker process: the request's actor and correlation id travel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from rail_django.security import EventType, security, use_context
from tests.conftest import require_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.integrations.urls"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BROKER = "redis://127.0.0.1:6379/0"
TASK = "tests.integrations.celery_app.record_export"


class Worker:
    """``celery -A tests.integrations.celery_app worker --pool=solo`` on a queue of its own."""

    def __init__(self, folder: Path) -> None:
        self.queue = f"rail-django-tests-{uuid.uuid4().hex[:12]}"
        self.log = folder / "worker-audit.log"
        self.output = folder / "worker-output.txt"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "tests.integrations.worker_settings",
               "RAIL_TEST_CELERY_BROKER": BROKER, "RAIL_TEST_CELERY_QUEUE": self.queue,
               "RAIL_TEST_WORKER_DB": str(folder / "worker.sqlite3"), "RAIL_TEST_WORKER_LOG": str(self.log),
               "RAIL_TEST_WORKER_JOURNAL": str(folder / "journal")}
        command = [sys.executable, "-m", "celery", "-A", "tests.integrations.celery_app", "worker", "--pool=solo",
                   "-Q", self.queue, "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
                   "-n", f"{self.queue}@%h"]
        self.handle = open(self.output, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.handle, stderr=subprocess.STDOUT)
        self._wait_for("ready.", timeout=60)

    def _wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the Celery worker exited ({self.process.returncode}):\n{self.output.read_text()[-3000:]}")
            if text in self.output.read_text():
                return
            time.sleep(0.2)
        pytest.fail(f"the Celery worker did not say {text!r} within {timeout}s:\n{self.output.read_text()[-3000:]}")

    def event_for(self, report_id: int, timeout: float = 30) -> dict:
        """The worker's event about ``report_id``, read from its JSON-lines audit log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.exists():
                for line in self.log.read_text().splitlines():
                    event = json.loads(line)
                    if event["resource"]["id"] == str(report_id):
                        return event
            time.sleep(0.2)
        pytest.fail(f"no event for report {report_id} within {timeout}s:\n{self.output.read_text()[-3000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.handle.close()


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    require_server("Redis", "127.0.0.1", 6379)
    from tests.integrations import celery_app

    started = Worker(tmp_path_factory.mktemp("celery"))
    # This process queues onto the worker's queue, on the same broker.
    celery_app.app.conf.update(broker_url=BROKER, task_default_queue=started.queue)
    yield started
    started.stop()


def test_a_task_queued_from_a_request_carries_its_actor_and_correlation_id(client, user, worker):
    client.force_login(user)
    response = client.get("/queue/?report=701", REMOTE_ADDR="203.0.113.90", HTTP_USER_AGENT="Browser/7")
    task_id = response.json()["task_id"]
    event = worker.event_for(701)
    assert (event["event_type"], event["user_id"], event["username"]) == ("data.export", str(user.pk), "alice")
    assert event["correlation_id"] == response["X-Correlation-ID"]
    assert (event["client_ip"], event["user_agent"], event["request_path"]) == ("203.0.113.90", "Browser/7", "/queue/")
    assert event["context"] == {"task": TASK, "task_id": task_id}


def test_the_next_task_does_not_inherit_the_previous_actor(client, django_user_model, worker):
    bob = django_user_model.objects.create_user("bob", password="x")
    client.force_login(bob)
    first = client.get("/queue/?report=702")
    client.logout()
    second = client.get("/queue/?report=703")
    assert worker.event_for(702)["username"] == "bob"
    anonymous = worker.event_for(703)
    assert anonymous["username"] is None and anonymous["user_id"] is None
    assert anonymous["correlation_id"] == second["X-Correlation-ID"] != first["X-Correlation-ID"]


def test_a_task_queued_outside_any_request_still_names_the_task(worker):
    from tests.integrations.celery_app import record_export

    result = record_export.delay(704)
    event = worker.event_for(704)
    assert event["user_id"] is None and event["context"] == {"task": TASK, "task_id": result.id}
    assert event["correlation_id"]  # a new one, shared by everything the task emits


def test_an_eager_task_keeps_the_callers_context(user):
    from tests.integrations.celery_app import record_export

    with use_context({"correlation_id": "caller-123", "user_id": str(user.pk), "username": "alice"}):
        record_export.apply(args=(705,))
    security.flush()
    from rail_django.models import get_audit_event_model

    row = get_audit_event_model().objects.get(event_type=EventType.DATA_EXPORT.value)
    assert (row.username, row.correlation_id) == ("alice", "caller-123")
    assert row.additional_data["context"]["task"] == TASK
