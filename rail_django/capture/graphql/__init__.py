"""GraphQL auditing: ``GraphQLAuditMiddleware`` (one event per operation) and ``AuditGraphQLView``.

``GRAPHENE = {"MIDDLEWARE": ["rail_django.security.graphql.GraphQLAuditMiddleware"]}``
is all a project needs; ``AuditGraphQLView`` (a drop-in ``GraphQLView``)
adds ``query.validation.failed`` events for operations that never execute.
"""

from typing import Any

from rail_django.capture.graphql.middleware import GraphQLAuditMiddleware
from rail_django.capture.graphql.operation import mutation_event_type

__all__ = ["AuditGraphQLView", "GraphQLAuditMiddleware", "mutation_event_type", "record_validation_failure"]


def __getattr__(name: str) -> Any:
    # The view imports graphene-django's view machinery: load it only when asked for.
    if name in ("AuditGraphQLView", "record_validation_failure"):
        from rail_django.capture.graphql import views

        return getattr(views, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
