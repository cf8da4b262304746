"""``logFrontendAudit``: a frontend records what its user did, as one ``ui.action`` event.

The actor is the authenticated request user, never a value from the input;
the ``roles`` a client sends are stored as ``client_claimed_roles``, which
nothing trusts. Every refusal (anonymous caller, rate limit, invalid input)
answers ``ok: false`` with a readable ``error`` and stores nothing, except
one ``rate.limit.exceeded`` event per caller and window.
"""

from __future__ import annotations

import json
from typing import Any

import graphene
from graphene.types.generic import GenericScalar

from rail_django.capture.graphql.rules import RECORDS_ITSELF
from rail_django.conf import get_config, get_graphql_config
from rail_django.events.types import EventType, Outcome, Severity
from rail_django.read.graphql.ratelimit import audit_context, over_limit
from rail_django.security.api import security

#: Longest value accepted for each string input field (characters).
MAX_LENGTHS: dict[str, int] = {
    "app_name": 100,
    "model_name": 100,
    "operation": 100,
    "component": 200,
    "description": 2000,
    "source_route": 2048,
}
#: Most roles accepted, and the longest role name.
MAX_ROLES = 50
MAX_ROLE_LENGTH = 100
#: The client's words for severity, on top of the ``Severity`` values themselves.
SEVERITY_ALIASES: dict[str, Severity] = {
    "low": Severity.INFO,
    "medium": Severity.WARNING,
    "high": Severity.ERROR,
    "critical": Severity.CRITICAL,
}


class InvalidInput(ValueError):
    """A frontend event that cannot be stored; the message is returned to the client."""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def resolve_severity(value: str | None) -> Severity:
    """``low``/``medium``/``high``/``critical`` or a ``Severity`` value (any case); ``None`` is ``info``."""
    if value is None or value == "":
        return Severity.INFO
    text = str(value).strip().lower()
    if text in SEVERITY_ALIASES:
        return SEVERITY_ALIASES[text]
    try:
        return Severity(text)
    except ValueError:
        allowed = ", ".join([*SEVERITY_ALIASES, *(s.value for s in Severity if s.value not in SEVERITY_ALIASES)])
        raise InvalidInput(f"Unknown severity {str(value)[:40]!r}: use one of {allowed}.") from None


def clean_metadata(value: Any, limit: int) -> dict[str, Any]:
    """The metadata as a dict: a JSON object, or a string holding one, at most ``limit`` bytes of JSON."""
    if value is None:
        return {}
    if isinstance(value, str):
        if len(value.encode("utf-8", "surrogatepass")) > limit:
            raise InvalidInput(f"metadata is larger than {limit} bytes.")
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidInput("metadata must be a JSON object; the string given is not valid JSON.") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"metadata must be a JSON object, not {type(value).__name__}.")
    # surrogatepass: a lone surrogate (a JSON "\ud800" escape) is sized here; redaction stores it as U+FFFD.
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise InvalidInput(f"metadata is {size} bytes of JSON; at most {limit} are accepted.")
    return value


def clean_input(data: Any, metadata_limit: int) -> dict[str, Any]:
    """The validated event fields of a ``FrontendAuditEventInput`` (raises :class:`InvalidInput`)."""
    cleaned: dict[str, Any] = {}
    for name, limit in MAX_LENGTHS.items():
        value = data.get(name)
        if value is not None and len(value) > limit:
            raise InvalidInput(f"{_camel(name)} is {len(value)} characters long; at most {limit} are accepted.")
        if name in ("app_name", "model_name", "operation", "component") and not (value or "").strip():
            raise InvalidInput(f"{_camel(name)} must not be empty.")
        cleaned[name] = value
    roles = data.get("roles") or []
    if len(roles) > MAX_ROLES:
        raise InvalidInput(f"roles has {len(roles)} entries; at most {MAX_ROLES} are accepted.")
    for role in roles:
        if role is not None and len(role) > MAX_ROLE_LENGTH:
            raise InvalidInput(f"Each role must be at most {MAX_ROLE_LENGTH} characters long.")
    cleaned["roles"] = [role for role in roles if role]
    cleaned["severity"] = resolve_severity(data.get("severity"))
    cleaned["metadata"] = clean_metadata(data.get("metadata"), metadata_limit)
    cleaned["success"] = data.get("success") is not False
    return cleaned


class FrontendAuditEventInput(graphene.InputObjectType):
    """One action a user took in a frontend."""

    app_name = graphene.String(required=True, description="Application (Django app) the action concerns, at most 100 characters.")
    model_name = graphene.String(required=True, description="Model the action concerns, at most 100 characters.")
    operation = graphene.String(required=True, description="What the user did (approve, export...), at most 100 characters.")
    component = graphene.String(required=True, description="UI component the action came from, at most 200 characters.")
    description = graphene.String(description="Free text, at most 2000 characters.")
    severity = graphene.String(
        description="low (info), medium (warning), high (error), critical, or debug/info/warning/error. Default info."
    )
    metadata = GenericScalar(
        description="A JSON object (or a string holding one, as JSONString takes), at most 8 KiB of JSON by default."
    )
    success = graphene.Boolean(default_value=True, description="Whether the action succeeded. Default true.")
    source_route = graphene.String(description="Frontend route the action was taken on, at most 2048 characters.")
    roles = graphene.List(
        graphene.String,
        description="Roles the frontend believes the user has (stored as client-claimed; at most 50).",
    )


class LogFrontendAuditMutation(graphene.Mutation):
    """Record a frontend action as a ``ui.action`` audit event for the authenticated user."""

    class Arguments:
        input = FrontendAuditEventInput(required=True)

    ok = graphene.Boolean(required=True, description="True when the event was recorded.")
    error = graphene.String(description="Why the event was not recorded.")

    @staticmethod
    def mutate(root: Any, info: Any, input: Any) -> LogFrontendAuditMutation:  # noqa: A002 (the GraphQL name)
        return LogFrontendAuditMutation(**record_frontend_event(info.context, input))


# GraphQLAuditMiddleware leaves this field alone: it records its own ui.action event.
setattr(LogFrontendAuditMutation, RECORDS_ITSELF, True)


def _rate_limit_refusal(request: Any, ctx: Any, config: Any) -> str | None:
    """Count this call; past the limit, the refusal message (and one ``rate.limit.exceeded`` per window)."""
    limit, window = config.frontend_rate_limit, config.frontend_rate_window
    if not over_limit(
        request, ctx, scope="logFrontendAudit", limit=limit, window=window, action="Frontend audit rate limit exceeded"
    ):
        return None
    return f"Rate limit exceeded: at most {limit} frontend audit events per {window} seconds."


def record_frontend_event(request: Any, data: Any) -> dict[str, Any]:
    """Check and store one frontend event; returns the mutation's ``{"ok": ..., "error": ...}``."""
    graphql_config = get_graphql_config()
    if not graphql_config.extension_mutations:
        return {"ok": False, "error": "Frontend audit events are disabled (enable_extension_mutations is false)."}
    if not get_config().enabled:
        return {"ok": False, "error": "Audit logging is disabled (GRAPHQL_ENABLE_AUDIT_LOGGING is False)."}
    request = request if hasattr(request, "META") else None
    ctx = audit_context(request)
    # The actor the event will carry: a bound actor (token APIs), else request.user.
    user_id = ctx.actor()[0] if ctx is not None else None
    if user_id is None and not graphql_config.frontend_allow_anonymous:
        return {"ok": False, "error": "Authentication is required to record frontend audit events."}

    refusal = _rate_limit_refusal(request, ctx, graphql_config)
    if refusal:
        return {"ok": False, "error": refusal}
    try:
        event = clean_input(data, graphql_config.frontend_max_metadata_bytes)
    except InvalidInput as exc:
        return {"ok": False, "error": str(exc)}
    stored = security.emit(
        EventType.UI_ACTION,
        request=request,
        outcome=Outcome.SUCCESS if event["success"] else Outcome.FAILURE,
        severity=event["severity"],
        action=f"{event['operation']} {event['app_name']}.{event['model_name']}",
        context={
            "source": "frontend",
            "app_name": event["app_name"],
            "model_name": event["model_name"],
            "operation": event["operation"],
            "component": event["component"],
            "description": event["description"],
            "severity_requested": data.get("severity"),
            "success": event["success"],
            "source_route": event["source_route"],
            "metadata": event["metadata"],
            "client_claimed_roles": event["roles"],
        },
        resource_type="model",
        resource_name=f"{event['app_name']}.{event['model_name']}",
    )
    if stored is None:
        return {"ok": False, "error": "The event could not be recorded."}
    return {"ok": True, "error": None}
