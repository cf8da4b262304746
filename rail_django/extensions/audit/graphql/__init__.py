"""Public path of the GraphQL audit API; it is defined in :mod:`rail_django.read.graphql`."""

from rail_django.read.graphql import (
    AuditAccessDenied,
    AuditEvent,
    AuditEventPage,
    AuditEventResource,
    AuditMutation,
    AuditPageInfo,
    AuditQuery,
    FrontendAuditEventInput,
    LogFrontendAuditMutation,
    build_audit_mutation,
    record_frontend_event,
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
