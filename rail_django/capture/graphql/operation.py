"""What one executed GraphQL operation did, and the single event that describes it.

:class:`OperationAudit` is made at the operation's first root field. It learns
what each root field did from two places:

* the middleware, on each root field: whether the resolver ran, raised, or
  returned a payload that reports a failure (``ok: false``, ``errors``);
* the ``ExecutionResult``, when the code that ran the operation hands it over
  (``AuditGraphQLView``, :func:`~rail_django.capture.graphql.execution.audited_execute`):
  every GraphQL error, at any depth, attributed to its root field by
  ``error.path`` and judged by ``error.original_error``.

Then :meth:`OperationAudit.finish` emits exactly one event.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from graphql import get_named_type

from rail_django.capture.graphql.rules import (
    ALREADY_RECORDED,
    MAX_ERRORS,
    MAX_ROOT_FIELDS,
    RECORDS_ITSELF,
    already_recorded,
    default_severity,
    error_message,
    is_permission_denied,
    mutation_event_type,
    payload_failure,
)
from rail_django.capture.graphql.secrets import scrub_secrets, secret_values
from rail_django.capture.graphql.selection import root_fields, variable_values
from rail_django.conf import GraphQLConfig, normalize_graphql_name
from rail_django.events.types import EventType, Outcome, Severity
from rail_django.security.api import security

__all__ = ["ALREADY_RECORDED", "RECORDS_ITSELF", "OperationAudit", "RootField", "mutation_event_type"]

logger = logging.getLogger("rail_django.audit")


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
        if len(self.errors) < MAX_ERRORS:
            self.errors.extend(messages[: MAX_ERRORS - len(self.errors)])

    def fail_with(self, error: BaseException) -> None:
        if already_recorded(error):
            self.recorded_elsewhere = True
        self.fail([error_message(error)], denied=is_permission_denied(error))


def _records_itself(root_type: Any, name: str) -> bool:
    field = root_type.fields.get(name)
    if field is None:
        return False
    graphene_type = getattr(get_named_type(field.type), "graphene_type", None)
    return bool(getattr(graphene_type, RECORDS_ITSELF, False))


class OperationAudit:
    """The state of one executing operation, from its first root field to its one event.

    ``emits_on_completion``: no caller will hand over the result (the stock
    ``GraphQLView``, or ``schema.execute`` with the middleware), so the event
    leaves when the last root field's resolver has finished, or at once when
    a non-null root field fails and stops the operation.
    """

    def __init__(self, info: Any, kind: str, fields: dict[str, RootField], config: GraphQLConfig) -> None:
        self.kind = kind
        self.operation_name = info.operation.name.value if info.operation.name else None
        self.fields = fields
        self.variables = variable_values(info)
        self.raw_variables: dict[str, Any] | None = None  # the request's own, when the view hands them over
        self.request = info.context if hasattr(info.context, "META") else None
        self.config = config
        self.started = time.perf_counter()
        self.finished = False
        self.emits_on_completion = True
        self.operation_errors: list[str] = []  # errors no root field can be blamed for
        self.on_finish: Any = None  # set by the owner to release what it holds

    @classmethod
    def begin(cls, info: Any, config: GraphQLConfig) -> OperationAudit | None:
        """The audit of the operation ``info`` belongs to, or ``None`` when it is not audited."""
        kind = info.operation.operation.value
        root_type = info.parent_type
        fields = {
            key: RootField(name, recorded=not name.startswith("__") and not _records_itself(root_type, name))
            for key, name in root_fields(info).items()
        }
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

    # --- root fields, as the middleware sees them (never raises) ----------------

    def resolver_raised(self, key: Any, error: BaseException, *, aborts: bool) -> None:
        """A root resolver raised ``error``; ``aborts`` when the field is non-null (the operation stops)."""
        try:
            if self.emits_on_completion:  # otherwise the error comes back in the result, with its path
                self.fields[key].fail_with(error)
        except Exception:
            logger.exception("Could not record a GraphQL resolver error")
        self.field_done(key, aborts=aborts)

    def resolver_returned(self, key: Any, result: Any, *, non_null: bool, label: str) -> None:
        """A root resolver returned ``result``: a payload may still report a failure."""
        aborts = False
        try:
            failure = payload_failure(result)
            if failure:
                self.fields[key].fail(failure)
            if result is None and non_null:
                aborts = True
                if self.emits_on_completion:
                    self.fields[key].fail([f"Cannot return null for non-nullable field {label}."])
        except Exception:
            logger.exception("Could not inspect a GraphQL payload")
        self.field_done(key, aborts=aborts)

    def field_done(self, key: Any, *, aborts: bool = False) -> None:
        """Mark a root field finished; when the event leaves on completion, the last one (or an abort) emits it."""
        field = self.fields.get(key)
        if field is not None:
            field.done = True
        if self.emits_on_completion and (aborts or all(f.done for f in self.fields.values())):
            self.finish()

    # --- the result, when the code that ran the operation hands it over --------------

    def complete(self, result: Any, *, request: Any = None, raw_variables: Any = None) -> None:
        """Attribute every error of the ``ExecutionResult`` to its root field, then emit the event."""
        try:
            if self.request is None and hasattr(request, "META"):
                self.request = request
            if isinstance(raw_variables, dict):
                self.raw_variables = raw_variables
            for error in getattr(result, "errors", None) or ():
                path = getattr(error, "path", None)
                field = self.fields.get(path[0]) if path else None
                if field is not None:
                    field.fail_with(error)
                elif len(self.operation_errors) < MAX_ERRORS:
                    self.operation_errors.append(error_message(error))
        except Exception:
            logger.exception("Could not read the GraphQL result of %r", self.operation_name)
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
        if all(f.recorded_elsewhere for f in recorded) and not self.operation_errors:
            return
        names = [f.name for f in recorded]
        # ...nor turn the operation's event into a denial; it still counts as a failure.
        denied = any(f.denied and not f.recorded_elsewhere for f in recorded)
        failed = any(f.failed for f in recorded) or bool(self.operation_errors)
        errors = [*self.operation_errors, *(message for f in recorded for message in f.errors)][:MAX_ERRORS]
        errors = scrub_secrets(errors, secret_values(self.raw_variables, self.variables))
        event_type, types = self._event_types(recorded)
        context: dict[str, Any] = {
            "operation_type": self.kind,
            "operation_name": self.operation_name,
            "root_fields": names[:MAX_ROOT_FIELDS],
            "variables": self.variables,
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 3),
        }
        if len(names) > MAX_ROOT_FIELDS:
            context["root_field_count"] = len(names)
        if len(set(types)) > 1:
            context["field_event_types"] = dict(zip(names[:MAX_ROOT_FIELDS], types[:MAX_ROOT_FIELDS], strict=True))
        not_executed = [f.name for f in recorded if not f.done]
        if not_executed:
            context["not_executed"] = not_executed[:MAX_ROOT_FIELDS]
        if errors:
            context["errors"] = errors
        severity = None
        if denied:
            outcome, context["attempted_event_type"] = Outcome.DENIED, event_type
            event_type = EventType.AUTHZ_PERMISSION_DENIED.value
        elif failed or not_executed:
            outcome = Outcome.FAILURE
            default = default_severity(event_type)
            severity = default if default.rank >= Severity.WARNING.rank else Severity.WARNING
        else:
            outcome = Outcome.SUCCESS
        label = f"{self.kind} {self.operation_name}" if self.operation_name else self.kind
        shown = ", ".join(names[:10]) + (f" (+{len(names) - 10})" if len(names) > 10 else "")
        security.emit(
            event_type,
            request=self.request,
            outcome=outcome,
            severity=severity,
            action=f"GraphQL {label}: {shown}",
            context=context,
            error="; ".join(errors[:5]) if errors else None,
            resource_type="graphql_operation",
            resource_name=self.operation_name or ",".join(names[:10]),
        )

    def _event_types(self, recorded: list[RootField]) -> tuple[str, list[str]]:
        if self.kind != "mutation":
            return EventType.DATA_READ.value, []
        types = [mutation_event_type(f.name, self.config) for f in recorded]
        return max(types, key=lambda t: default_severity(t).rank), types  # the first wins a tie
