"""``audited_execute``: run an operation yourself and record its one audit event from the result.

For code that calls ``schema.execute`` itself rather than serving the schema
through ``AuditGraphQLView``. The event leaves once execution has returned,
with every error of the ``ExecutionResult`` (at any depth) taken into account.
"""

from __future__ import annotations

from typing import Any

from graphql import ExecutionResult, GraphQLSchema, MiddlewareManager, graphql, graphql_sync

from rail_django.capture.graphql.middleware import GraphQLAuditMiddleware, audit_middleware, is_audit_middleware
from rail_django.capture.graphql.run import operation_run

# graphene's Schema.execute accepts these short names too.
_GRAPHENE_NAMES = {"root": "root_value", "context": "context_value", "variables": "variable_values",
                   "operation": "operation_name"}


def _arguments(schema: Any, source: Any, kwargs: dict[str, Any]) -> tuple[GraphQLSchema, dict[str, Any]]:
    graphql_schema = getattr(schema, "graphql_schema", schema)  # a graphene Schema, or graphql-core's own
    if not isinstance(graphql_schema, GraphQLSchema):
        raise TypeError(f"audited_execute() takes a graphene Schema or a GraphQLSchema, not {type(schema).__name__}.")
    arguments = {_GRAPHENE_NAMES.get(name, name): value for name, value in kwargs.items()}
    middleware = arguments.get("middleware")
    if middleware is None or isinstance(middleware, (list, tuple)) or type(middleware) is MiddlewareManager:
        members = list(getattr(middleware, "middlewares", middleware) or ())
        if not any(is_audit_middleware(m) for m in members):
            middleware = [*members, GraphQLAuditMiddleware()]  # last: it also sees the others' errors
    arguments["middleware"] = audit_middleware(graphql_schema, middleware, field_resolver=arguments.get("field_resolver"))
    arguments["source"] = source
    return graphql_schema, arguments


def _completion(arguments: dict[str, Any]) -> dict[str, Any]:
    context = arguments.get("context_value")
    return {
        "request": context if hasattr(context, "META") else None,
        "operation_name": arguments.get("operation_name"),
        "variables": arguments.get("variable_values"),
        "query": arguments.get("source"),
    }


def audited_execute(schema: Any, source: Any, **kwargs: Any) -> ExecutionResult:
    """Execute ``source`` like ``schema.execute(source, **kwargs)`` and record the operation's audit event.

    ``schema`` is a graphene ``Schema`` or a graphql-core ``GraphQLSchema``;
    ``kwargs`` are those of ``schema.execute`` (``context_value``,
    ``variable_values``, ``operation_name``, ``root_value``, ``middleware``...).
    ``GraphQLAuditMiddleware`` is added to ``middleware`` when it is not there.
    Pass the Django request as ``context_value`` so the event names its actor
    and request (otherwise those of the request being served are used). The
    event leaves before this function returns; an operation rejected before
    execution is recorded as ``query.validation.failed`` when
    ``record_validation_failures`` is on.
    """
    graphql_schema, arguments = _arguments(schema, source, kwargs)
    with operation_run() as run:
        result = graphql_sync(graphql_schema, **arguments)
    run.complete(result, **_completion(arguments))
    return result


async def audited_execute_async(schema: Any, source: Any, **kwargs: Any) -> ExecutionResult:
    """The ``async`` form of :func:`audited_execute` (like ``schema.execute_async``), for async resolvers."""
    graphql_schema, arguments = _arguments(schema, source, kwargs)
    with operation_run() as run:
        result = await graphql(graphql_schema, **arguments)
    run.complete(result, **_completion(arguments))
    return result
