"""The rules that decide an operation event's type and outcome, as plain functions.

They read no GraphQL execution state, so they can be read (and tested)
without running GraphQL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied
from graphql import GraphQLError

from rail_django.conf import GraphQLConfig, normalize_graphql_name
from rail_django.events.types import EventType, Severity

#: Most error messages kept on one event.
MAX_ERRORS = 20
#: Most root field names listed on one event (``root_field_count`` tells the rest).
MAX_ROOT_FIELDS = 100

#: Attribute a graphene type sets to record its own event instead (``logFrontendAudit``).
RECORDS_ITSELF = "rail_django_records_itself"
#: Attribute an exception carries when its event was already emitted (audit-query refusals).
ALREADY_RECORDED = "rail_django_audit_recorded"

_FIRST_WORD = re.compile(r"[A-Za-z][a-z0-9]*")
_PREFIX_EVENT_TYPES = {
    "create": EventType.DATA_CREATE.value,
    "add": EventType.DATA_CREATE.value,
    "update": EventType.DATA_UPDATE.value,
    "set": EventType.DATA_UPDATE.value,
    "edit": EventType.DATA_UPDATE.value,
    "delete": EventType.DATA_DELETE.value,
    "remove": EventType.DATA_DELETE.value,
    "bulk": EventType.DATA_BULK_OPERATION.value,
}


def mutation_event_type(field_name: str, config: GraphQLConfig) -> str:
    """The event type of a mutation root field.

    The project's ``mutation_event_types`` mapping first (field names compared
    case-insensitively, ``create_order`` equal to ``createOrder``), then the
    first word of the name: create/add -> ``data.create``, update/set/edit ->
    ``data.update``, delete/remove -> ``data.delete``, bulk -> ``data.bulk``;
    anything else is ``data.update``.
    """
    mapped = config.mutation_event_types.get(normalize_graphql_name(field_name))
    if mapped:
        return mapped
    match = _FIRST_WORD.match(field_name)
    word = match.group(0).lower() if match else ""
    return _PREFIX_EVENT_TYPES.get(word, EventType.DATA_UPDATE.value)


def default_severity(event_type: str) -> Severity:
    try:
        return EventType(event_type).default_severity
    except ValueError:
        return Severity.INFO


def is_permission_denied(error: BaseException) -> bool:
    """Django's ``PermissionDenied`` (or any ``PermissionDenied`` class), raw or carried by a GraphQL error."""
    original = getattr(error, "original_error", None)
    for candidate in (error, original):
        if candidate is None:
            continue
        if isinstance(candidate, PermissionDenied):
            return True
        if any(klass.__name__ == "PermissionDenied" for klass in type(candidate).__mro__):
            return True
    return False


def already_recorded(error: BaseException) -> bool:
    """The error's own event was emitted where it was raised (it carries :data:`ALREADY_RECORDED`)."""
    original = getattr(error, "original_error", None)
    return bool(getattr(error, ALREADY_RECORDED, False) or getattr(original, ALREADY_RECORDED, False))


def error_message(error: BaseException) -> str:
    if isinstance(error, GraphQLError):
        return error.message
    return str(error) or type(error).__name__


def _describe_error_item(item: Any) -> str:
    if isinstance(item, Mapping):
        field, messages = item.get("field"), item.get("messages") or item.get("message")
    else:
        field, messages = getattr(item, "field", None), getattr(item, "messages", None) or getattr(item, "message", None)
    if messages is None:
        return str(item)
    text = ", ".join(str(m) for m in messages) if isinstance(messages, (list, tuple)) else str(messages)
    return f"{field}: {text}" if field else text


def payload_failure(result: Any) -> list[str] | None:
    """Error messages when a root field's payload reports a failure (``ok: false`` or a non-empty ``errors``)."""
    if result is None or isinstance(result, (str, bytes, int, float, list, tuple)):
        return None
    if isinstance(result, Mapping):
        ok, errors, error = result.get("ok"), result.get("errors"), result.get("error")
    else:
        ok = getattr(result, "ok", None)
        errors = getattr(result, "errors", None)
        error = getattr(result, "error", None)
    if isinstance(errors, (list, tuple)) and errors:
        return [_describe_error_item(item) for item in errors[:MAX_ERRORS]]
    if ok is False:
        return [str(error)] if isinstance(error, str) and error else ["The operation answered ok: false"]
    return None
