"""What one executed GraphQL operation did, and the single event that describes it.

:class:`OperationAudit` collects, per root field, whether it succeeded,
failed or was denied, then :meth:`OperationAudit.finish` emits exactly one
event. The rules that decide an event's type and outcome live here, as plain
functions, so they can be read (and tested) without running GraphQL.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied
from graphql import GraphQLError, get_named_type
from graphql.execution.collect_fields import collect_fields

from rail_django.conf import GraphQLConfig, normalize_graphql_name
from rail_django.events.types import EventType, Outcome, Severity
from rail_django.security.api import security

logger = logging.getLogger("rail_django.audit")

#: Most error messages kept on one event.
MAX_ERRORS = 20

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


def _default_severity(event_type: str) -> Severity:
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


def _already_recorded(error: BaseException) -> bool:
    return bool(getattr(error, ALREADY_RECORDED, False) or getattr(getattr(error, "original_error", None), ALREADY_RECORDED, False))


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


class RootField:
    """One root field of the operation (one entry per response key)."""

    __slots__ = ("name", "recorded", "done", "failed", "denied", "errors", "recorded_elsewhere")

    def __init__(self, name: str, recorded: bool) -> None:
        self.name = name
        self.recorded = recorded
        self.done = False
        self.failed = False
        self.denied = False
        self.recorded_elsewhere = False
        self.errors: list[str] = []

    def fail(self, messages: list[str], *, denied: bool = False) -> None:
        self.failed = True
        self.denied = self.denied or denied
        self.errors.extend(messages)

    def fail_with(self, error: BaseException) -> None:
        if _already_recorded(error):
            self.recorded_elsewhere = True
        self.fail([error_message(error)], denied=is_permission_denied(error))


def _records_itself(root_type: Any, name: str) -> bool:
    field = root_type.fields.get(name)
    if field is None:
        return False
    graphene_type = getattr(get_named_type(field.type), "graphene_type", None)
    return bool(getattr(graphene_type, RECORDS_ITSELF, False))


class OperationAudit:
    """The state of one executing operation, from its first root field to its one event."""

    def __init__(self, info: Any, kind: str, fields: dict[str, RootField], config: GraphQLConfig) -> None:
        self.kind = kind
        self.operation_name = info.operation.name.value if info.operation.name else None
        self.fields = fields
        self.variables = dict(info.variable_values or {})
        self.context = info.context
        self.config = config
        self.started = time.perf_counter()
        self.finished = False
        self.on_finish: Any = None  # set by the middleware to release what it holds

    @classmethod
    def begin(cls, info: Any, config: GraphQLConfig) -> OperationAudit | None:
        """The audit of the operation ``info`` belongs to, or ``None`` when it is not audited."""
        kind = info.operation.operation.value
        root_type = info.parent_type
        collected = collect_fields(
            info.schema, info.fragments, info.variable_values, root_type, info.operation.selection_set
        )
        fields = {}
        for key, nodes in collected.items():
            name = nodes[0].name.value
            fields[key] = RootField(name, recorded=not name.startswith("__") and not _records_itself(root_type, name))
        names = [f.name for f in fields.values() if f.recorded]
        if not names:
            return None
        if kind != "mutation":
            listed = config.audited_queries
            op_name = info.operation.name.value if info.operation.name else None
            if not (
                (op_name and normalize_graphql_name(op_name) in listed)
                or any(normalize_graphql_name(name) in listed for name in names)
            ):
                return None
        return cls(info, kind, fields, config)

    # --- root field lifecycle (never raises: a bookkeeping problem must not fail a field) ---

    def resolver_raised(self, key: Any, error: BaseException, *, aborts: bool) -> None:
        """A root resolver raised ``error``; ``aborts`` when the field is non-null (the operation stops)."""
        try:
            self.fields[key].fail_with(error)
        except Exception:
            logger.exception("Could not record a GraphQL resolver error")
        self.field_done(key, aborts=aborts)

    def resolver_returned(self, key: Any, result: Any) -> None:
        """A root resolver returned ``result``: a payload may still report a failure."""
        try:
            failure = payload_failure(result)
            if failure:
                self.fields[key].fail(failure)
        except Exception:
            logger.exception("Could not inspect a GraphQL payload")

    def completion_errors(self, key: Any, errors: list[Any]) -> None:
        """Record GraphQL errors raised below a root field while its value was completed."""
        try:
            for error in errors[:MAX_ERRORS]:
                self.fields[key].fail_with(error)
        except Exception:
            logger.exception("Could not record GraphQL field errors")

    def field_done(self, key: Any, *, aborts: bool = False) -> None:
        """Mark a root field finished; the last one (or one that ``aborts``) emits the event."""
        field = self.fields.get(key)
        if field is not None:
            field.done = True
        if aborts or all(f.done for f in self.fields.values()):
            self.finish()

    # --- the event --------------------------------------------------------------

    def finish(self) -> None:
        """Emit the operation's one event (once; never raises)."""
        if self.finished:
            return
        self.finished = True
        try:
            if self.on_finish is not None:
                self.on_finish()
            self._emit()
        except Exception:
            logger.exception("Could not record the GraphQL %s %r", self.kind, self.operation_name)

    def _emit(self) -> None:
        recorded = [f for f in self.fields.values() if f.recorded]
        # A field whose refusal was already recorded (the audit query) does not make a second event...
        if all(f.recorded_elsewhere for f in recorded):
            return
        names = [f.name for f in recorded]
        # ...nor turn the operation's event into a denial; it still counts as a failure.
        denied = any(f.denied and not f.recorded_elsewhere for f in recorded)
        failed = any(f.failed for f in recorded)
        errors = [message for f in recorded for message in f.errors][:MAX_ERRORS]
        if self.kind == "mutation":
            types = [mutation_event_type(f.name, self.config) for f in recorded]
            event_type = max(types, key=lambda t: _default_severity(t).rank)  # first wins a tie
        else:
            types, event_type = [], EventType.DATA_READ.value
        context: dict[str, Any] = {
            "operation_type": self.kind,
            "operation_name": self.operation_name,
            "root_fields": names,
            "variables": self.variables,
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 3),
        }
        if len(set(types)) > 1:
            context["field_event_types"] = dict(zip(names, types, strict=True))
        not_executed = [f.name for f in recorded if not f.done]
        if not_executed:
            context["not_executed"] = not_executed
        if errors:
            context["errors"] = errors
        severity = None
        if denied:
            outcome, context["attempted_event_type"] = Outcome.DENIED, event_type
            event_type = EventType.AUTHZ_PERMISSION_DENIED.value
        elif failed or not_executed:
            outcome = Outcome.FAILURE
            default = _default_severity(event_type)
            severity = default if default.rank >= Severity.WARNING.rank else Severity.WARNING
        else:
            outcome = Outcome.SUCCESS
        label = f"{self.kind} {self.operation_name}" if self.operation_name else self.kind
        security.emit(
            event_type,
            request=self.context if hasattr(self.context, "META") else None,
            outcome=outcome,
            severity=severity,
            action=f"GraphQL {label}: {', '.join(names)}",
            context=context,
            error="; ".join(errors[:5]) if errors else None,
            resource_type="graphql_operation",
            resource_name=self.operation_name or ",".join(names),
        )
