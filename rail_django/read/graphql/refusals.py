"""Refused reads of audit events: one event per refused operation, rate-limited per client.

A query with a thousand ``auditEvent`` aliases is refused a thousand times,
but it is one attempt: the first refusal of an operation records one
``authz.permission.denied`` event carrying ``refused_fields`` (how many
audit-read fields the operation selected), and the rest record nothing.
Each client may cause :data:`REFUSALS_PER_WINDOW` such events per
:data:`REFUSAL_WINDOW_SECONDS`; past that, one ``rate.limit.exceeded``
(scope ``auditEvents``) per window, and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rail_django.capture.graphql import state
from rail_django.capture.graphql.selection import count_selected_fields
from rail_django.events.types import EventType, Outcome
from rail_django.read.graphql.ratelimit import audit_context, over_limit
from rail_django.security.api import security

#: Refusal events recorded per client and window; later refusals in the window record nothing.
REFUSALS_PER_WINDOW = 10
#: The window, in seconds.
REFUSAL_WINDOW_SECONDS = 60
RATE_SCOPE = "auditEvents"
_STATE_NAME = "audit_read_refused"


def record_refusal(info: Any, permission: str, is_read_field: Callable[[Any], bool]) -> None:
    """Record the refusal of the field ``info`` resolves, unless its operation already has its event."""
    if state.get(info, _STATE_NAME):
        return
    state.put(info, _STATE_NAME, True)
    request = info.context if hasattr(info.context, "META") else None
    ctx = audit_context(request)
    if over_limit(
        request, ctx, scope=RATE_SCOPE, limit=REFUSALS_PER_WINDOW, window=REFUSAL_WINDOW_SECONDS,
        action="Refused audit event reads: rate limit exceeded",
    ):
        return
    security.emit(
        EventType.AUTHZ_PERMISSION_DENIED,
        request=request,
        outcome=Outcome.DENIED,
        action=f"Audit events read refused ({info.field_name})",
        context={
            "permission": permission,
            "graphql_field": info.field_name,
            "refused_fields": max(1, count_selected_fields(info, is_read_field)),
        },
        resource_type="audit_event",
    )
