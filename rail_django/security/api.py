"""``security.emit`` / ``security.flush``: the public entry point — build the event, hand it to delivery."""

from __future__ import annotations

import logging
from typing import Any

from rail_django.conf import get_config
from rail_django.delivery.dispatcher import dispatcher
from rail_django.events.build import build_event
from rail_django.events.types import EventType, Outcome, SecurityEvent, Severity

logger = logging.getLogger("rail_django.audit")


class SecurityEventAPI:
    """The entry point for recording events: ``security.emit(...)``."""

    def emit(
        self,
        event_type: EventType | str,
        *,
        request: Any = None,
        outcome: Outcome | str = Outcome.SUCCESS,
        severity: Severity | str | None = None,
        action: str = "",
        context: dict[str, Any] | None = None,
        error: Any = None,
        resource_type: str | None = None,
        resource_name: str | None = None,
        resource_id: Any = None,
        risk_score: float | None = None,
        user: Any = None,
    ) -> SecurityEvent | None:
        """Record one event and return it (``None`` when audit logging is disabled).

        ``request=None`` uses the request captured by
        :class:`~rail_django.security.middleware.context.SecurityContextMiddleware`
        for the running code, if any; ``user`` overrides the actor. Never
        raises: a problem building or delivering the event is logged on the
        ``rail_django.audit`` logger.
        """
        try:
            if not get_config().enabled:
                return None
            event = build_event(
                event_type, request=request, outcome=outcome, severity=severity, action=action,
                context=context, error=error, resource_type=resource_type, resource_name=resource_name,
                resource_id=resource_id, risk_score=risk_score, user=user,
            )
        except Exception:
            logger.exception("Could not build audit event %r", event_type)
            return None
        try:
            dispatcher.deliver(event)
        except Exception:
            logger.exception("Could not deliver audit event %s (%s)", event.event_id, event.event_type)
        return event

    def build(self, event_type: EventType | str, **fields: Any) -> SecurityEvent:
        """Build the enriched, redacted event without delivering it (same arguments as :meth:`emit`)."""
        return build_event(event_type, **fields)

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver everything queued; returns False if ``timeout`` ran out first."""
        return dispatcher.flush(timeout)

    async def aflush(self, timeout: float | None = None) -> bool:
        """``flush`` for async code: waits in a thread, not on the event loop."""
        from asgiref.sync import sync_to_async

        return await sync_to_async(dispatcher.flush, thread_sensitive=False)(timeout)


security = SecurityEventAPI()
