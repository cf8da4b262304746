"""``LockoutBackend``: refuses logins for a client IP or username that raised a failed-login alert.

Off unless ``AUDIT_LOCKOUT_ENABLED = True``; it must then be the first entry of
``AUTHENTICATION_BACKENDS`` (``rail_django.E031`` says so otherwise)::

    AUTHENTICATION_BACKENDS = [
        "rail_django.security.backends.LockoutBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]

A locked key stays locked for ``suspicious_activity_window`` seconds after its
alert. The backend raises ``PermissionDenied``, which makes Django stop
trying the other backends and send ``user_login_failed``; rail-django records
that failure as ``auth.login.failure`` with outcome ``blocked``, and does not
count it towards further alerts.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import BaseBackend
from django.core.exceptions import PermissionDenied

from rail_django.alerts import failed_logins as alerts
from rail_django.capture.context import context_for_request
from rail_django.conf import read_setting

BACKEND_PATH = "rail_django.security.backends.LockoutBackend"


class LockoutBackend(BaseBackend):
    """Authenticates nobody; refuses everyone who is locked out."""

    def authenticate(self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any) -> None:
        if read_setting("AUDIT_LOCKOUT_ENABLED") is not True:
            return None
        from rail_django.capture.auth import attempted_username

        client_ip = context_for_request(request).client_ip()[0] if request is not None else None
        lockout = alerts.lockout_for(client_ip=client_ip, username=attempted_username({**kwargs, "username": username}))
        if lockout is not None:
            alerts.mark_refused(lockout)
            raise PermissionDenied("Too many failed logins; try again later.")
        return None
