"""``AuditGraphQLView``: graphene-django's ``GraphQLView`` that also records rejected operations.

An operation that does not parse, does not validate against the schema, or
whose variables cannot be coerced never executes, so no execution middleware
sees it. When ``RAIL_DJANGO_GRAPHQL["security_settings"]["record_validation_failures"]``
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

from rail_django.capture.graphql.operation import MAX_ERRORS
from rail_django.conf import get_graphql_config
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

    Error messages and variable values are redacted before they are stored.
    Call it from your own view if you do not use :class:`AuditGraphQLView`.
    """
    messages = [error.message if isinstance(error, GraphQLError) else str(error) for error in errors][:MAX_ERRORS]
    security.emit(
        EventType.QUERY_VALIDATION_FAILED,
        request=request if hasattr(request, "META") else None,
        outcome=Outcome.FAILURE,
        action=f"GraphQL operation rejected: {operation_name}" if operation_name else "GraphQL operation rejected",
        context={
            "operation_name": operation_name,
            "variables": dict(variables) if isinstance(variables, dict) else {},
            "errors": messages,
        },
        error="; ".join(messages[:5]) or None,
        resource_type="graphql_operation",
        resource_name=operation_name,
    )


class AuditGraphQLView(GraphQLView):
    """``GraphQLView`` that records operations rejected before execution (when the project asks).

    Use it in place of ``graphene_django.views.GraphQLView``; everything else
    behaves the same.
    """

    def parse_body(self, request: Any) -> Any:
        try:
            return super().parse_body(request)
        except UnicodeDecodeError:
            raise HttpError(HttpResponseBadRequest("The request body is not valid UTF-8.")) from None
        except RecursionError:
            raise HttpError(HttpResponseBadRequest("The request body is nested too deeply.")) from None

    def execute_graphql_request(
        self,
        request: Any,
        data: Any,
        query: Any,
        variables: Any,
        operation_name: Any,
        show_graphiql: bool = False,
    ) -> Any:
        result = super().execute_graphql_request(request, data, query, variables, operation_name, show_graphiql)
        if result is None or not result.errors or result.data is not None:
            return result
        # Errors raised while executing carry the path of their field; these did not execute at all.
        if all(isinstance(error, GraphQLError) and not error.path for error in result.errors):
            if get_graphql_config().record_validation_failures:
                record_validation_failure(
                    request, result.errors, operation_name=operation_name or _operation_name(query), variables=variables
                )
        return result


def _operation_name(query: Any) -> str | None:
    """The name of the document's only operation, when the query parses and has one."""
    try:
        operation = get_operation_ast(parse(str(query)))
    except GraphQLError:
        return None
    return operation.name.value if operation is not None and operation.name else None
