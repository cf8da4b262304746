"""The operation whose result will be handed back: named by a context variable while it executes.

``AuditGraphQLView`` and :func:`~.execution.audited_execute` put an
:class:`OperationRun` around one execution; ``GraphQLAuditMiddleware`` gives it
the operation's audit at the first root field, and the caller completes it
with the ``ExecutionResult`` once execution has returned.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from rail_django.conf import get_graphql_config

logger = logging.getLogger("rail_django.audit")

_current: ContextVar[OperationRun | None] = ContextVar("rail_django_graphql_run", default=None)


def rejected_before_execution(result: Any) -> bool:
    """The result of an operation that never executed: errors only, none of them on a field path."""
    errors = getattr(result, "errors", None)
    return bool(errors) and result.data is None and all(not getattr(error, "path", None) for error in errors)


class OperationRun:
    """One execution whose result will be handed back; it owns the first operation that reaches it."""

    __slots__ = ("operation", "audit", "decided")

    def __init__(self) -> None:
        self.operation: Any = None
        self.audit: Any = None  # the OperationAudit, set by the middleware at the first root field
        self.decided = False  # whether the middleware has looked at the operation

    def owns(self, operation: Any) -> bool:
        """True for this run's operation; the first one seen becomes it (a nested execution is another)."""
        if self.operation is None:
            self.operation = operation
        return self.operation is operation

    def complete(
        self,
        result: Any,
        *,
        request: Any = None,
        operation_name: str | None = None,
        variables: Any = None,
        query: Any = None,
    ) -> None:
        """Emit the operation's event from its ``result``, or record its rejection (when asked for; never raises)."""
        try:
            if self.audit is not None:
                self.audit.complete(result, request=request, raw_variables=variables)
            elif self.operation is None and rejected_before_execution(result):
                if get_graphql_config().record_validation_failures:
                    from rail_django.capture.graphql.views import record_rejection

                    record_rejection(
                        request, result.errors, operation_name=operation_name, variables=variables, query=query
                    )
        except Exception:  # the response must still go out
            logger.exception("Could not record the GraphQL operation %r", operation_name)


def current_run() -> OperationRun | None:
    """The run the code now executing belongs to, if any."""
    return _current.get()


@contextmanager
def operation_run() -> Iterator[OperationRun]:
    """Name a new :class:`OperationRun` while the block executes one operation."""
    run = OperationRun()
    token = _current.set(run)
    try:
        yield run
    finally:
        _current.reset(token)
