"""Celery: a task queued from a request runs with that request's actor and correlation id.

Active only when ``celery`` is installed (:func:`install`, from ``ready()``):

- ``before_task_publish`` (in the process that queues the task) adds the
  current audit context -- actor, client IP, correlation id, and the
  impersonator if any -- to the message as the header :data:`HEADER`, a small
  JSON-serialisable dict. Nothing is added outside a request or task.
- ``task_prerun`` (in the worker) installs that context for the task, tagged
  with ``context.task`` (the task's name) and ``context.task_id``;
  ``task_postrun`` removes it. A task queued with no context still gets the tags.

So every event the task emits names the user who queued it, carries the
request's ``correlation_id``, and says which task emitted it -- with no code in
the task. A task run eagerly (``apply()``, ``task_always_eager``) keeps the
context it is called in.
"""

from __future__ import annotations

from typing import Any

from rail_django.capture.context import (
    AuditContext,
    accept_correlation_id,
    capture_context,
    get_current_context,
    reset_current_context,
    set_current_context,
)

HEADER = "rail_django_context"
_tokens: dict[str, Any] = {}  # task id -> the context-variable token to reset after the task


def on_before_task_publish(sender: Any = None, headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    if headers is None or HEADER in headers:
        return
    snapshot = capture_context()
    if snapshot is not None:
        headers[HEADER] = snapshot


def on_task_prerun(sender: Any = None, task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    request = getattr(task, "request", None)
    snapshot = request.get(HEADER) if request is not None else None
    tags = {"task": getattr(task, "name", None) or str(sender), "task_id": task_id}
    if isinstance(snapshot, dict):
        ctx = AuditContext(correlation_id=accept_correlation_id(snapshot.get("correlation_id")),
                           snapshot=snapshot, tags=tags)
    else:
        current = get_current_context()  # eager: the caller's own context goes on
        snapshot = current.snapshot() if current is not None else None
        ctx = AuditContext(correlation_id=current.correlation_id if current is not None else None,
                           snapshot=snapshot, tags=tags)
    if task_id is not None:
        _tokens[task_id] = set_current_context(ctx)


def on_task_postrun(sender: Any = None, task_id: str | None = None, **kwargs: Any) -> None:
    token = _tokens.pop(task_id, None) if task_id is not None else None
    if token is not None:
        try:
            reset_current_context(token)
        except ValueError:  # created in another context (a pool that switched threads): drop it
            set_current_context(None)


def install() -> None:
    """Connect the three Celery signals (weakly held module functions, so ``weak=False``)."""
    from celery import signals

    signals.before_task_publish.connect(on_before_task_publish, weak=False, dispatch_uid="rail_django.celery.publish")
    signals.task_prerun.connect(on_task_prerun, weak=False, dispatch_uid="rail_django.celery.prerun")
    signals.task_postrun.connect(on_task_postrun, weak=False, dispatch_uid="rail_django.celery.postrun")
