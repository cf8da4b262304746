"""Public path of the audit model; it is defined in :mod:`rail_django.models`."""

from rail_django.models import (
    AppendOnlyError,
    AuditChainState,
    AuditEventModel,
    AuditEventQuerySet,
    allow_retention_delete,
    get_audit_event_model,
)

__all__ = [
    "AppendOnlyError",
    "AuditChainState",
    "AuditEventModel",
    "AuditEventQuerySet",
    "allow_retention_delete",
    "get_audit_event_model",
]
