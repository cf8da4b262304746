"""A per-client budget for the events anyone can trigger without logging in.

Suspicious requests, permission denials and Django REST framework failures
are recorded with no code, so a client that sends them in a loop would fill
the audit table. ``AUDIT_CLIENT_EVENT_LIMIT = {"events": 20, "window": 60}``
bounds them: per client (the authenticated user, else the client IP) and per
kind, at most ``events`` are recorded in each ``window`` seconds; the first
one past it is recorded as one ``rate.limit.exceeded`` (outcome ``blocked``)
and the rest of the window records nothing more. Counting costs one cache
``add`` or ``incr`` per event, in the cache ``AUDIT_CACHE_ALIAS``; when the
cache fails, events are recorded unbounded for ``CACHE_RETRY_SECONDS``
rather than lost.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache import caches

from rail_django.capture.context import context_for_request, get_current_context
from rail_django.conf import get_config, read_setting
from rail_django.events.types import EventType, Outcome
from rail_django.security.api import security

logger = logging.getLogger("rail_django.audit")

CACHE_RETRY_SECONDS = 30.0
_KEY = "rail_django:client_events"
_cache_down_until = 0.0


def client_limit() -> tuple[int, int]:
    """``(events, window)`` from ``AUDIT_CLIENT_EVENT_LIMIT`` (the defaults for a value that is not usable)."""
    value = read_setting("AUDIT_CLIENT_EVENT_LIMIT")
    events, window = 20, 60
    if isinstance(value, dict):
        if isinstance(value.get("events"), int) and value["events"] >= 1:
            events = value["events"]
        if isinstance(value.get("window"), int) and value["window"] >= 1:
            window = value["window"]
    return events, window


def _client(request: Any) -> str:
    ctx = context_for_request(request) if request is not None else get_current_context()
    if ctx is None:
        return "unknown"
    user_id = ctx.actor()[0]
    if user_id is not None:
        return f"user:{user_id}"
    return f"ip:{ctx.client_ip()[0] or 'unknown'}"


def _count(key: str, window: int) -> int | None:
    global _cache_down_until
    if time.monotonic() < _cache_down_until:
        return None
    cache = caches[get_config().cache_alias]
    try:
        if cache.add(key, 1, timeout=window + 1):
            return 1
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        return 1 if cache.add(key, 1, timeout=window + 1) else None
    except Exception:
        _cache_down_until = time.monotonic() + CACHE_RETRY_SECONDS
        logger.warning("Client event limit skipped: cache %r failed", get_config().cache_alias, exc_info=True)
        return None


def within_client_limit(request: Any, kind: str) -> bool:
    """Count one ``kind`` event of this request's client; False once its budget for the window is spent.

    The first event past the budget records the ``rate.limit.exceeded`` event itself.
    """
    events, window = client_limit()
    client = _client(request)
    count = _count(f"{_KEY}:{kind}:{client}:{int(time.time() // window)}", window)
    if count is None or count <= events:
        return True
    if count == events + 1:
        security.emit(
            EventType.RATE_LIMIT_EXCEEDED,
            request=request,
            outcome=Outcome.BLOCKED,
            action=f"More than {events} {kind} events from one client within {window}s; the rest are not recorded",
            context={"scope": kind, "limit": events, "window_seconds": window, "client": client},
        )
    return False
