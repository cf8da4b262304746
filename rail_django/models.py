"""Makes the audit model visible to Django's app registry (app label ``rail_django``)."""

from rail_django.extensions.audit.models import AuditEventModel

__all__ = ["AuditEventModel"]
