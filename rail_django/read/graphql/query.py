"""``AuditQuery``: read-only ``auditEvents`` and ``auditEvent`` for frontends and admins.

Only users with the permission ``rail_django.view_auditeventmodel``
(superusers included) may read; anyone else gets a permission error, and the
refusal is itself recorded as ``authz.permission.denied``. There is no way to
create, change or delete an audit row through GraphQL.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import uuid
from datetime import datetime
from typing import Any

import graphene
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from graphene.types.generic import GenericScalar
from graphql import GraphQLError

from rail_django.capture.graphql.rules import ALREADY_RECORDED
from rail_django.conf import get_config
from rail_django.events.types import Outcome, Severity
from rail_django.models import get_audit_event_model
from rail_django.read.graphql.refusals import record_refusal

#: The permission a user needs to read audit events.
VIEW_PERMISSION = "rail_django.view_auditeventmodel"
#: Page size when none is asked for, and the largest one served.
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_FILTER_LENGTH = 255
MAX_EVENT_TYPES = 50

_OUTCOMES = [o.value for o in Outcome]
_SEVERITIES = [s.value for s in Severity]


class AuditAccessDenied(PermissionDenied):
    """Refusal to read audit events; already recorded, so the GraphQL middleware does not record it again."""


setattr(AuditAccessDenied, ALREADY_RECORDED, True)


def _is_read_field(field: Any) -> bool:
    return field.resolve in (AuditQuery.resolve_audit_events, AuditQuery.resolve_audit_event)


def require_audit_reader(info: Any) -> None:
    """Raise :class:`AuditAccessDenied` unless the user may read audit events.

    The refusal is recorded once per operation and rate-limited per client
    (see :mod:`~rail_django.read.graphql.refusals`).
    """
    request = info.context if hasattr(info.context, "META") else None
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False) and user.has_perm(VIEW_PERMISSION):
        return
    record_refusal(info, VIEW_PERMISSION, _is_read_field)
    raise AuditAccessDenied(f"You do not have permission to read audit events ({VIEW_PERMISSION}).")


class AuditEventResource(graphene.ObjectType):
    """What an event was about."""

    type = graphene.String()
    name = graphene.String()
    id = graphene.String()


class AuditEvent(graphene.ObjectType):
    """One stored audit event; ``outcome``, ``action``, ``resource`` and ``context`` come from ``additional_data``."""

    id = graphene.ID(required=True, description="The event's UUID (event_id).")
    event_type = graphene.String(required=True)
    severity = graphene.String(required=True)
    outcome = graphene.String(required=True)
    success = graphene.Boolean(required=True)
    action = graphene.String()
    timestamp = graphene.DateTime(required=True)
    user_id = graphene.String()
    username = graphene.String()
    client_ip = graphene.String()
    user_agent = graphene.String()
    request_path = graphene.String()
    request_method = graphene.String()
    correlation_id = graphene.String()
    session_id = graphene.String()
    error_message = graphene.String()
    risk_score = graphene.Float()
    resource = graphene.Field(AuditEventResource)
    context = GenericScalar(description="The event's context (already redacted when it was stored).")

    @staticmethod
    def resolve_id(row: Any, info: Any) -> str:
        return str(row.event_id)

    @staticmethod
    def resolve_outcome(row: Any, info: Any) -> str:
        return (row.additional_data or {}).get("outcome") or ("success" if row.success else "failure")

    @staticmethod
    def resolve_action(row: Any, info: Any) -> str:
        return (row.additional_data or {}).get("action") or ""

    @staticmethod
    def resolve_risk_score(row: Any, info: Any) -> float | None:
        return (row.additional_data or {}).get("risk_score")

    @staticmethod
    def resolve_resource(row: Any, info: Any) -> dict[str, Any]:
        resource = (row.additional_data or {}).get("resource") or {}
        return AuditEventResource(**{k: resource.get(k) for k in ("type", "name", "id")})

    @staticmethod
    def resolve_context(row: Any, info: Any) -> dict[str, Any]:
        return (row.additional_data or {}).get("context") or {}


class AuditPageInfo(graphene.ObjectType):
    """Where this page sits: cursors for ``first``/``after``, numbers for ``page``/``pageSize``."""

    has_next_page = graphene.Boolean(required=True)
    has_previous_page = graphene.Boolean(required=True)
    start_cursor = graphene.String()
    end_cursor = graphene.String()
    page = graphene.Int(description="Set when paginating with page/pageSize.")
    page_size = graphene.Int(required=True)


class AuditEventPage(graphene.ObjectType):
    """One page of audit events, newest first."""

    items = graphene.List(graphene.NonNull(AuditEvent), required=True)
    page_info = graphene.Field(AuditPageInfo, required=True)
    total_count = graphene.Int(required=True, description="Events matching the filters (counted only when asked for).")

    @staticmethod
    def resolve_total_count(page: dict[str, Any], info: Any) -> int:
        return page["queryset"].count()

    @staticmethod
    def resolve_items(page: dict[str, Any], info: Any) -> list[Any]:
        return page["items"]

    @staticmethod
    def resolve_page_info(page: dict[str, Any], info: Any) -> dict[str, Any]:
        return page["page_info"]


def encode_cursor(row: Any) -> str:
    return base64.urlsafe_b64encode(f"{row.timestamp.isoformat()}|{row.pk}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        stamp, pk = base64.urlsafe_b64decode(cursor.encode()).decode().rsplit("|", 1)
        return datetime.fromisoformat(stamp), int(pk)
    except (binascii.Error, UnicodeError, ValueError):
        raise GraphQLError(f"after: {cursor[:40]!r} is not a cursor returned by auditEvents.") from None


def _text_filter(name: str, value: str | None) -> str | None:
    if value is not None and len(value) > MAX_FILTER_LENGTH:
        raise GraphQLError(f"{name} is longer than {MAX_FILTER_LENGTH} characters.")
    return value


def filter_events(queryset: QuerySet, args: dict[str, Any]) -> QuerySet:
    """Apply the ``auditEvents`` filters (raises ``GraphQLError`` on a value that cannot match)."""
    event_types = list(args.get("event_types") or [])
    if args.get("event_type"):
        event_types.append(args["event_type"])
    if len(event_types) > MAX_EVENT_TYPES:
        raise GraphQLError(f"eventTypes accepts at most {MAX_EVENT_TYPES} types.")
    if event_types:
        queryset = queryset.filter(event_type__in=[_text_filter("eventType", t) for t in event_types])
    severity = args.get("severity")
    if severity is not None:
        if severity.lower() not in _SEVERITIES:
            raise GraphQLError(f"severity must be one of {', '.join(_SEVERITIES)}.")
        queryset = queryset.filter(severity=severity.lower())
    outcome = args.get("outcome")
    if outcome is not None:
        if outcome.lower() not in _OUTCOMES:
            raise GraphQLError(f"outcome must be one of {', '.join(_OUTCOMES)}.")
        if outcome.lower() == Outcome.SUCCESS.value:
            queryset = queryset.filter(success=True)
        else:  # the indexed success column first, then the JSON outcome
            queryset = queryset.filter(success=False, additional_data__outcome=outcome.lower())
    if args.get("success") is not None:
        queryset = queryset.filter(success=args["success"])
    for arg, label in (("user_id", "userId"), ("username", "username"), ("correlation_id", "correlationId")):
        if args.get(arg) is not None:
            queryset = queryset.filter(**{arg: _text_filter(label, args[arg])})
    # Model change tracking: the events about one object (resource_type = "app_label.modelname").
    for arg, label, lookup in (("resource_type", "resourceType", "additional_data__resource__type"),
                               ("resource_id", "resourceId", "additional_data__resource__id")):
        if args.get(arg) is not None:
            queryset = queryset.filter(**{lookup: _text_filter(label, args[arg])})
    client_ip = args.get("client_ip")
    if client_ip is not None:
        try:
            queryset = queryset.filter(client_ip=str(ipaddress.ip_address(client_ip.strip())))
        except ValueError:
            raise GraphQLError(f"clientIp: {client_ip[:60]!r} is not an IP address.") from None
    if args.get("since") is not None:
        queryset = queryset.filter(timestamp__gte=args["since"])
    if args.get("until") is not None:
        queryset = queryset.filter(timestamp__lt=args["until"])
    return queryset


def _page_size(name: str, value: int | None) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise GraphQLError(f"{name} must be between 1 and {MAX_PAGE_SIZE}.")
    return value


def paginate(queryset: QuerySet, args: dict[str, Any]) -> dict[str, Any]:
    """Newest first; ``first``/``after`` (cursors) or ``page``/``pageSize`` (numbers), not both."""
    queryset = queryset.order_by("-timestamp", "-pk")
    numbered = args.get("page") is not None or args.get("page_size") is not None
    if numbered and (args.get("first") is not None or args.get("after") is not None):
        raise GraphQLError("Use either first/after or page/pageSize, not both.")
    if numbered:
        size, page = _page_size("pageSize", args.get("page_size")), args.get("page")
        page = 1 if page is None else page
        if page < 1:
            raise GraphQLError("page must be 1 or more.")
        rows = list(queryset[(page - 1) * size : page * size + 1])
        has_previous = page > 1
    else:
        size, page = _page_size("first", args.get("first")), None
        window = queryset
        if args.get("after"):
            stamp, pk = decode_cursor(args["after"])
            window = queryset.filter(Q(timestamp__lt=stamp) | Q(timestamp=stamp, pk__lt=pk))
        rows = list(window[: size + 1])
        has_previous = bool(args.get("after"))
    items = rows[:size]
    return {
        "queryset": queryset,
        "items": items,
        "page_info": AuditPageInfo(
            has_next_page=len(rows) > size,
            has_previous_page=has_previous,
            start_cursor=encode_cursor(items[0]) if items else None,
            end_cursor=encode_cursor(items[-1]) if items else None,
            page=page,
            page_size=size,
        ),
    }


#: Largest database id looked up (a signed 64-bit column).
MAX_DATABASE_ID = 2**63 - 1


def event_lookup(value: Any) -> dict[str, Any]:
    """The lookup for an ``auditEvent`` id: an event UUID or a database id (raises ``GraphQLError`` otherwise)."""
    text = str(value).strip()
    try:
        return {"event_id": uuid.UUID(text)}
    except ValueError:
        pass
    # ASCII digits only: str.isdigit() also accepts "²" and other digits int() refuses.
    if text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= MAX_DATABASE_ID:
        return {"pk": int(text)}
    raise GraphQLError(f"id: {text[:40]!r} is not an audit event id (an event UUID or a database id).")


def _events() -> QuerySet:
    return get_audit_event_model().objects.using(get_config().database_alias)


class AuditQuery(graphene.ObjectType):
    """Mix into your ``Query``: ``class Query(AuditQuery, graphene.ObjectType): ...``."""

    audit_events = graphene.Field(
        AuditEventPage,
        required=True,
        description=f"Stored audit events, newest first. Requires {VIEW_PERMISSION}.",
        event_type=graphene.String(),
        event_types=graphene.List(graphene.NonNull(graphene.String)),
        severity=graphene.String(),
        outcome=graphene.String(),
        success=graphene.Boolean(),
        user_id=graphene.String(),
        username=graphene.String(),
        client_ip=graphene.String(),
        correlation_id=graphene.String(),
        resource_type=graphene.String(description='The model label of tracked changes, e.g. "orders.order".'),
        resource_id=graphene.String(description="The object's primary key, as text."),
        since=graphene.DateTime(description="Events at or after this time."),
        until=graphene.DateTime(description="Events before this time."),
        first=graphene.Int(description=f"Page size for cursor pagination (default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE})."),
        after=graphene.String(description="endCursor of the previous page."),
        page=graphene.Int(description="Page number (from 1) for numbered pagination."),
        page_size=graphene.Int(description=f"Page size for numbered pagination (at most {MAX_PAGE_SIZE})."),
    )
    audit_event = graphene.Field(
        AuditEvent,
        id=graphene.ID(required=True, description="The event's UUID (or its database id)."),
        description=f"One stored audit event, or null. Requires {VIEW_PERMISSION}.",
    )

    @staticmethod
    def resolve_audit_events(root: Any, info: Any, **args: Any) -> dict[str, Any]:
        require_audit_reader(info)
        return paginate(filter_events(_events(), args), args)

    @staticmethod
    def resolve_audit_event(root: Any, info: Any, id: str) -> Any:  # noqa: A002 (the GraphQL name)
        require_audit_reader(info)
        return _events().filter(**event_lookup(id)).first()
