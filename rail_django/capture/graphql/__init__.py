"""GraphQL auditing: ``GraphQLAuditMiddleware`` (one event per operation), ``AuditGraphQLView`` and ``audited_execute``.

``GRAPHENE = {"MIDDLEWARE": ["rail_django.security.graphql.GraphQLAuditMiddleware"]}``
records every executed operation; served through ``AuditGraphQLView`` (a
drop-in ``GraphQLView``) each event is built from the operation's result, and
operations rejected before execution can be recorded too. Code that executes
GraphQL itself calls ``audited_execute`` / ``audited_execute_async``.
"""

from typing import Any

from rail_django.capture.graphql.execution import audited_execute, audited_execute_async
from rail_django.capture.graphql.middleware import GraphQLAuditMiddleware
from rail_django.capture.graphql.rules import mutation_event_type

__all__ = [
    "AuditGraphQLView",
    "GraphQLAuditMiddleware",
    "audited_execute",
    "audited_execute_async",
    "mutation_event_type",
    "record_validation_failure",
]


def __getattr__(name: str) -> Any:
    # The view imports graphene-django's view machinery: load it only when asked for.
    if name in ("AuditGraphQLView", "record_validation_failure"):
        from rail_django.capture.graphql import views

        return getattr(views, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
