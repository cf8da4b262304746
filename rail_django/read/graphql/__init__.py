"""The audit extension's GraphQL API: ``logFrontendAudit`` and the read-only audit query.

Mix :class:`AuditMutation` into your ``Mutation`` and :class:`AuditQuery` into
your ``Query``::

    class Query(AuditQuery, graphene.ObjectType):
        ...

    class Mutation(AuditMutation, graphene.ObjectType):
        ...
"""

from __future__ import annotations

from typing import Any

import graphene

from rail_django.conf import get_graphql_config
from rail_django.read.graphql.frontend import (
    FrontendAuditEventInput,
    LogFrontendAuditMutation,
    record_frontend_event,
)
from rail_django.read.graphql.query import (
    AuditAccessDenied,
    AuditEvent,
    AuditEventPage,
    AuditEventResource,
    AuditPageInfo,
    AuditQuery,
)

__all__ = [
    "AuditAccessDenied",
    "AuditEvent",
    "AuditEventPage",
    "AuditEventResource",
    "AuditMutation",
    "AuditPageInfo",
    "AuditQuery",
    "FrontendAuditEventInput",
    "LogFrontendAuditMutation",
    "build_audit_mutation",
    "record_frontend_event",
]


def build_audit_mutation(enabled: bool | None = None) -> type[graphene.ObjectType]:
    """The ``AuditMutation`` mixin: with ``log_frontend_audit`` when extension mutations are enabled.

    ``enabled`` defaults to ``RAIL_DJANGO_GRAPHQL["schema_settings"]["enable_extension_mutations"]``
    (true unless the project says otherwise), read when the schema module imports this one.
    """
    if enabled is None:
        enabled = get_graphql_config().extension_mutations
    attrs: dict[str, Any] = {
        "__doc__": "Mix into your Mutation: class Mutation(AuditMutation, graphene.ObjectType): ...",
        "__module__": __name__,
    }
    if enabled:
        attrs["log_frontend_audit"] = LogFrontendAuditMutation.Field(
            description="Record a frontend action as a ui.action audit event for the authenticated user."
        )
    return type("AuditMutation", (graphene.ObjectType,), attrs)


AuditMutation = build_audit_mutation()
