"""Public path of the audit admin; it is defined in :mod:`rail_django.read.admin`."""

from rail_django.read.admin import AuditEventAdmin, register_admin

__all__ = ["AuditEventAdmin", "register_admin"]
