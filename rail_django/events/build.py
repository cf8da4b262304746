"""Building an event: the captured request context added, every field cleaned and redacted."""

from __future__ import annotations

import math
from typing import Any

from django.utils import timezone

from rail_django.capture.context import (
    MAX_USER_AGENT_LENGTH,
    AuditContext,
    context_for_request,
    describe_user,
    get_current_context,
)
from rail_django.conf import get_config
from rail_django.events.redaction import current_redactor
from rail_django.events.types import (
    DEFAULT_SEVERITIES,
    EventType,
    Outcome,
    SecurityEvent,
    Severity,
    coerce_severity,
)

#: Longest stored event type, action and resource fields.
MAX_EVENT_TYPE_LENGTH = 64
MAX_ACTION_LENGTH = 512
MAX_RESOURCE_LENGTH = 255


def _text(value: Any, limit: int) -> str | None:
    """A resource field: often from the client (an id, an operation name), so scrubbed like free text."""
    if value is None:
        return None
    return current_redactor().scrub_text(str(value)[:limit])[:limit]


def build_event(
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
) -> SecurityEvent:
    """Build one event: the captured context (actor, client IP, request facts) added, every text redacted."""
    config = get_config()
    redactor = current_redactor()
    type_value = event_type.value if isinstance(event_type, EventType) else str(event_type)
    # EventType members are str: the table answers for their values (a project's own type: INFO).
    default_severity = DEFAULT_SEVERITIES.get(type_value, Severity.INFO)
    outcome_value = outcome.value if isinstance(outcome, Outcome) else str(outcome).lower()

    ctx: AuditContext | None = context_for_request(request) if request is not None else get_current_context()
    if user is not None:
        user_id, username = describe_user(user)
    elif ctx is not None:
        user_id, username = ctx.actor()
    else:
        user_id, username = None, None
    if ctx is not None:
        client_ip, remote_addr = ctx.client_ip()
        facts = ctx.request_facts()
        correlation_id = ctx.correlation_id
    else:
        client_ip = remote_addr = correlation_id = None
        facts = {"user_agent": "", "request_path": "", "request_method": "", "session_id": None}
    if not config.capture_user_agent:
        facts["user_agent"] = ""

    try:
        score = float(risk_score) if risk_score is not None else None
    except (TypeError, ValueError, OverflowError):
        score = None
    if score is not None and not math.isfinite(score):  # NaN and infinities are not JSON
        score = None
    extra = ctx.extra_context() if ctx is not None else None
    if extra:  # the command, task or impersonator of the running context: facts the caller cannot override
        base = context if isinstance(context, dict) else ({"value": context} if context else {})
        context = {**base, **extra}
    cleaned_context = redactor.clean(context) if context else {}
    if not isinstance(cleaned_context, dict):
        cleaned_context = {"value": cleaned_context}
    return SecurityEvent(
        event_type=type_value[:MAX_EVENT_TYPE_LENGTH],
        timestamp=timezone.now(),
        severity=coerce_severity(severity, default_severity).value,
        outcome=outcome_value[:16],
        action=redactor.scrub_text(str(action or ""))[:MAX_ACTION_LENGTH],
        user_id=user_id,
        username=redactor.scrub_text(username) if username else username,
        client_ip=client_ip,
        remote_addr=remote_addr,
        user_agent=redactor.scrub_text(facts["user_agent"] or "")[:MAX_USER_AGENT_LENGTH],
        request_path=redactor.scrub_text(facts["request_path"] or ""),
        request_method=redactor.scrub_text(facts["request_method"] or "")[:16],  # a varchar(16) column
        correlation_id=correlation_id,
        session_id=facts["session_id"],
        resource_type=_text(resource_type, MAX_RESOURCE_LENGTH),
        resource_name=_text(resource_name, MAX_RESOURCE_LENGTH),
        resource_id=_text(resource_id, MAX_RESOURCE_LENGTH),
        risk_score=score,
        context=cleaned_context,
        error=redactor.scrub_text(str(error)) if error is not None else None,
    )
