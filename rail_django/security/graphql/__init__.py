"""Public path of the GraphQL capture (``GRAPHENE["MIDDLEWARE"]``); the code lives in :mod:`rail_django.capture.graphql`."""

from rail_django.capture.graphql import (  # noqa: F401  (re-exported)
    GraphQLAuditMiddleware,
    __all__,
    __getattr__,  # AuditGraphQLView and record_validation_failure, loaded only when asked for
    audited_execute,
    audited_execute_async,
    mutation_event_type,
)
