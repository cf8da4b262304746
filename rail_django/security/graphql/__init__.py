"""Public path of the GraphQL capture (``GRAPHENE["MIDDLEWARE"]``); the code lives in :mod:`rail_django.capture.graphql`."""

from typing import Any

from rail_django.capture.graphql import (
    GraphQLAuditMiddleware,
    audited_execute,
    audited_execute_async,
    mutation_event_type,
)

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
