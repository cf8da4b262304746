"""The Celery app of the integration tests, run by a real worker process (``celery -A ... worker``).

Broker and queue come from the environment so each test run has a queue of
its own on the shared Redis: ``RAIL_TEST_CELERY_BROKER`` (default
``redis://127.0.0.1:6379/0``) and ``RAIL_TEST_CELERY_QUEUE``.
"""

import os

from celery import Celery

# The worker runs Django with the worker settings (Celery's Django fix-up calls django.setup()).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integrations.worker_settings")

app = Celery("rail_django_tests", broker=os.environ.get("RAIL_TEST_CELERY_BROKER", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_default_queue=os.environ.get("RAIL_TEST_CELERY_QUEUE", "rail-django-tests"),
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="tests.integrations.celery_app.record_export")
def record_export(report_id: int) -> None:
    """Emits one event with no audit code at all: the actor and correlation id come with the task."""
    from rail_django.security import EventType, security

    security.emit(EventType.DATA_EXPORT, action="Exported a report", resource_type="report", resource_id=report_id)
    security.flush()
