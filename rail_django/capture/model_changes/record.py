"""A captured change becomes an event when, and only if, its transaction commits.

``transaction.on_commit(..., robust=True)`` defers the event to the commit:
a rolled-back transaction or savepoint discards it (Django drops the
callbacks registered inside it), and outside ``atomic()`` the callback runs
at once. The audit context of the change (actor, request, correlation id)
is captured when the change happens and restored around the emit, in case
the commit runs elsewhere (a task runner's own transaction handling).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction

from rail_django.capture.context import AuditContext, get_current_context, reset_current_context, set_current_context
from rail_django.conf import get_config
from rail_django.delivery.dispatcher import dispatcher
from rail_django.events.build import MAX_RESOURCE_LENGTH
from rail_django.events.redaction import current_redactor
from rail_django.events.types import EventType
from rail_django.security.api import security

logger = logging.getLogger("rail_django.audit")

#: Most ids listed in one event (``count`` stays exact).
MAX_IDS = 1000

#: Lists of ids put into the context after the pipeline's redaction pass: that pass cuts every
#: list to its first 200 items, and ids are listed up to MAX_IDS. Each id is still scrubbed as
#: text, like ``resource_id``. Keyed by their path in the context, e.g. ("m2m", "tags", "added").
IdLists = dict[tuple[str, ...], list[str]]


def describe(instance: Any) -> str | None:
    """``str(instance)`` for ``resource_name``, or None when its ``__str__`` fails."""
    try:
        return str(instance)[:MAX_RESOURCE_LENGTH]
    except Exception:  # a model's broken __str__ must not break its save
        return None


def _place_lists(context: dict[str, Any], lists: IdLists) -> None:
    scrub = current_redactor().scrub_text
    for path, ids in lists.items():
        node: Any = context
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        # A container the redaction pass masked (a field whose name is a secret's) stays masked.
        if isinstance(node, dict) and path[-1] in node:
            node[path[-1]] = [i if i.isdigit() else scrub(i) for i in ids[:MAX_IDS]]


def emit_change(event_type: EventType, *, action: str, resource_type: str, resource_id: str | None,
                resource_name: str | None, context: dict[str, Any], lists: IdLists | None = None) -> None:
    """``security.emit`` for a change record, with its id lists placed whole (see :data:`IdLists`)."""
    if not lists:
        security.emit(event_type, action=action, context=context, resource_type=resource_type,
                      resource_id=resource_id, resource_name=resource_name)
        return
    if not get_config().enabled:
        return
    try:
        event = security.build(event_type, action=action, context=context, resource_type=resource_type,
                               resource_id=resource_id, resource_name=resource_name)
        _place_lists(event.context, lists)
    except Exception:
        logger.exception("Could not build audit event %r", str(event_type))
        return
    try:
        dispatcher.deliver(event)
    except Exception:
        logger.exception("Could not deliver audit event %s (%s)", event.event_id, event.event_type)


def run_in(ctx: AuditContext | None, func: Callable[[], None]) -> None:
    """Run ``func`` with ``ctx`` as the current audit context (the context of the change)."""
    token = set_current_context(ctx) if ctx is not get_current_context() else None
    try:
        func()
    finally:
        if token is not None:
            reset_current_context(token)


def defer(using: str, func: Callable[[], None]) -> None:
    """Run ``func`` when the transaction on ``using`` commits (at once outside ``atomic()``),
    in the audit context current now."""
    ctx = get_current_context()
    transaction.on_commit(lambda: run_in(ctx, func), using=using, robust=True)


def on_commit(using: str, **kwargs: Any) -> None:
    """Emit the change described by ``kwargs`` (see :func:`emit_change`) when ``using`` commits."""
    defer(using, lambda: emit_change(**kwargs))
