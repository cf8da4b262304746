"""Found by Django's admin autodiscovery: registers the audit-event admin and its dashboard.

Set ``AUDIT_ADMIN_ENABLED = False`` to keep them out of the default admin
site; call :func:`rail_django.read.admin.register_admin` with
your own ``AdminSite`` to put them there instead.
"""

from rail_django.read.admin import register_admin

register_admin()
