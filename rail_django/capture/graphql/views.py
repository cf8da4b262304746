"""``AuditGraphQLView``: graphene-django's ``GraphQLView`` that records each operation from its result.

It runs every operation inside an :class:`~.run.OperationRun`, so the
operation's one event leaves when execution has returned, built from the
``ExecutionResult`` (every error, at any depth, with its path and original
error), and it keeps ``GraphQLAuditMiddleware`` on root fields only (see
:func:`~.middleware.audit_middleware`). An operation that does not parse, does
not validate against the schema, or whose variables cannot be coerced never
executes; when ``RAIL_DJANGO_GRAPHQL["security_settings"]["record_validation_failures"]``
is true this view records each one as ``query.validation.failed``.

It also answers 400, where graphene-django's view answers 500, to a body it
cannot read: an ``application/graphql`` body that is not UTF-8, or JSON
nested deeper than Python's parser recurses.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import HttpResponseBadRequest
from graphene_django.views import GraphQLView, HttpError
from graphql import GraphQLError, get_operation_ast, parse

from rail_django.capture.graphql.middleware import audit_middleware
from rail_django.capture.graphql.rules import MAX_ERRORS
from rail_django.capture.graphql.run import operation_run
from rail_django.capture.graphql.secrets import scrub_secrets, secret_values
from rail_django.events.types import EventType, Outcome
from rail_django.security.api import security


def record_validation_failure(
    request: Any,
    errors: Iterable[BaseException],
    *,
    operation_name: str | None = None,
    variables: dict[str, Any] | None = None,
) -> None:
    """Record one ``query.validation.failed`` event for an operation rejected before execution.

    Error messages and variable values are redacted before they are stored,
    and the value of every variable redaction masks is also taken out of the
    error messages. Call it from your own view if you use neither
    :class:`AuditGraphQLView` nor ``audited_execute``.
    """
    variables = dict(variables) if isinstance(variables, dict) else {}
    messages = [error.message if isinstance(error, GraphQLError) else str(error) for error in errors][:MAX_ERRORS]
    messages = scrub_secrets(messages, secret_values(variables))
    security.emit(
        EventType.QUERY_VALIDATION_FAILED,
        request=request if hasattr(request, "META") else None,
        outcome=Outcome.FAILURE,
        action=f"GraphQL operation rejected: {operation_name}" if operation_name else "GraphQL operation rejected",
        context={"operation_name": operation_name, "variables": variables, "errors": messages},
        error="; ".join(messages[:5]) or None,
        resource_type="graphql_operation",
        resource_name=operation_name,
    )


def record_rejection(
    request: Any, errors: Iterable[BaseException], *, operation_name: Any, variables: Any, query: Any
) -> None:
    """:func:`record_validation_failure`, naming the operation from the query text when it was not given."""
    name = operation_name if isinstance(operation_name, str) and operation_name else _operation_name(query)
    record_validation_failure(request, errors, operation_name=name, variables=variables)


class AuditGraphQLView(GraphQLView):
    """``GraphQLView`` whose operations are recorded from their result; use it in place of graphene-django's.

    With ``GraphQLAuditMiddleware`` in the view's middleware
    (``GRAPHENE["MIDDLEWARE"]``), each executed operation's event takes every
    GraphQL error into account, at any depth; operations rejected before
    execution are recorded when ``record_validation_failures`` is on.
    Everything else behaves as graphene-django's view.
    """

    def parse_body(self, request: Any) -> Any:
        try:
            return super().parse_body(request)
        except UnicodeDecodeError:
            raise HttpError(HttpResponseBadRequest("The request body is not valid UTF-8.")) from None
        except RecursionError:
            raise HttpError(HttpResponseBadRequest("The request body is nested too deeply.")) from None

    def get_middleware(self, request: Any) -> Any:
        return audit_middleware(self.schema.graphql_schema, super().get_middleware(request))

    def execute_graphql_request(
        self,
        request: Any,
        data: Any,
        query: Any,
        variables: Any,
        operation_name: Any,
        show_graphiql: bool = False,
    ) -> Any:
        with operation_run() as run:
            result = super().execute_graphql_request(request, data, query, variables, operation_name, show_graphiql)
        run.complete(result, request=request, operation_name=operation_name, variables=variables, query=query)
        return result


def _operation_name(query: Any) -> str | None:
    """The name of the document's only operation, when the query parses and has one."""
    try:
        operation = get_operation_ast(parse(str(query)))
    except GraphQLError:
        return None
    return operation.name.value if operation is not None and operation.name else None
