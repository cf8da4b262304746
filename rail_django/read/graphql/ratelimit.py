"""Per-client rate limits for what a GraphQL client can make the audit trail write.

A client is its actor (a bound actor for token APIs, else ``request.user``)
or, when anonymous, its IP address. Counts live in the cache named by
``AUDIT_CACHE_ALIAS``, in fixed windows; the first call past the limit in a
window records one ``rate.limit.exceeded`` event, the rest record nothing.
If the cache fails, calls are not limited (and a warning is logged) rather
than refused, and the cache is left alone for :data:`CACHE_RETRY_SECONDS`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache import caches

from rail_django.capture.context import context_for_request, get_current_context
from rail_django.conf import get_config
from rail_django.events.types import EventType, Outcome
from rail_django.security.api import security

logger = logging.getLogger("rail_django.audit")

#: Seconds the rate limiter leaves a failing cache alone before trying it again.
CACHE_RETRY_SECONDS = 30.0
_KEY_PREFIX = "rail_django:graphql_rate"
_cache_down_until = 0.0


def audit_context(request: Any) -> Any:
    """The audit context of ``request`` (or of the code running now, without one)."""
    return context_for_request(request) if hasattr(request, "META") else get_current_context()


def client_key(ctx: Any) -> str:
    """``user:<id>`` for an actor, else ``ip:<address>``."""
    user_id = ctx.actor()[0] if ctx is not None else None
    if user_id is not None:
        return f"user:{user_id}"
    client_ip = ctx.client_ip()[0] if ctx is not None else None
    return f"ip:{client_ip or 'unknown'}"


def count_call(scope: str, client: str, window: int) -> int | None:
    """This call's number in the client's current window, or ``None`` when the cache cannot count."""
    global _cache_down_until
    if time.monotonic() < _cache_down_until:
        return None
    alias = get_config().cache_alias
    cache = caches[alias]
    key = f"{_KEY_PREFIX}:{scope}:{client}:{int(time.time() // window)}"
    try:
        if cache.add(key, 1, timeout=window + 1):
            return 1
        return cache.incr(key)
    except ValueError:  # the key expired between add and incr
        return 1 if cache.add(key, 1, timeout=window + 1) else None
    except Exception:
        _cache_down_until = time.monotonic() + CACHE_RETRY_SECONDS
        logger.warning("GraphQL %s rate limit skipped: cache %r failed", scope, alias, exc_info=True)
        return None


def over_limit(request: Any, ctx: Any, *, scope: str, limit: int | None, window: int, action: str) -> bool:
    """Count this call for its client; ``True`` past ``limit`` calls in the window.

    The first call past the limit records one ``rate.limit.exceeded`` event
    (outcome ``blocked``, context ``{"limit", "window_seconds", "scope"}``).
    ``limit=None`` never limits.
    """
    if limit is None:
        return False
    count = count_call(scope, client_key(ctx), window)
    if count is None or count <= limit:
        return False
    if count == limit + 1:  # the first refusal of the window, and only that one, is recorded
        security.emit(
            EventType.RATE_LIMIT_EXCEEDED,
            request=request if hasattr(request, "META") else None,
            outcome=Outcome.BLOCKED,
            action=action,
            context={"limit": limit, "window_seconds": window, "scope": scope},
        )
    return True
