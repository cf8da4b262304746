"""Makes the audit model visible to Django's app registry (app label ``rail_django``)."""

from rail_django.extensions.audit.models import AuditChainState, AuditEventModel

__all__ = ["AuditChainState", "AuditEventModel"]
