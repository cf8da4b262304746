"""``LockoutBackend`` and ``LockoutMiddleware``: refuse logins that the lockout rules lock out, with HTTP 429.

Off unless ``AUDIT_LOCKOUT_ENABLED = True``; the backend must then be the
first entry of ``AUTHENTICATION_BACKENDS`` (``rail_django.E031``) and the
middleware belongs in ``MIDDLEWARE`` (``rail_django.W060``)::

    AUTHENTICATION_BACKENDS = [
        "rail_django.security.backends.LockoutBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]
    MIDDLEWARE = [..., "rail_django.alerts.lockout.LockoutMiddleware"]

The rules (what is counted, limits, cool-off tiers, allow and deny lists)
are in :mod:`rail_django.alerts.lockout_rules`, the counting in
:mod:`rail_django.alerts.lockout_store`. For a locked attempt the backend
raises ``PermissionDenied``, which makes Django stop trying the other
backends and send ``user_login_failed``; rail-django records that failure as
``auth.login.failure`` with outcome ``blocked`` and does not count it. The
backend also marks the request, and the middleware answers it with HTTP 429
and ``Retry-After`` (403 for a deny list) -- whatever the login view
(``LoginView``, the admin, a DRF or SimpleJWT token view) would have said.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.contrib.auth.backends import BaseBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

from rail_django.alerts import failed_logins as alerts
from rail_django.alerts import lockout_store
from rail_django.alerts.lockout_rules import get_rules
from rail_django.capture.context import context_for_request
from rail_django.conf import read_setting

BACKEND_PATH = "rail_django.security.backends.LockoutBackend"
_LOCK = "_rail_django_lockout"  # our attribute on Django's request: the lock to answer with 429


def lockout_enabled() -> bool:
    return read_setting("AUDIT_LOCKOUT_ENABLED") is True


def mark_request(request: Any, lock: lockout_store.Lock) -> None:
    """Remember ``lock`` on Django's request (also when ``request`` is DRF's wrapper around it)."""
    if request is None:
        return
    target = context_for_request(request).request or request  # the HttpRequest the middleware sees
    setattr(target, _LOCK, lock)


class LockoutBackend(BaseBackend):
    """Authenticates nobody; refuses every attempt the lockout rules lock out."""

    def authenticate(self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any) -> None:
        if not lockout_enabled():
            return None
        from rail_django.capture.auth import attempted_username

        attempt = lockout_store.attempt_for(request, attempted_username({**kwargs, "username": username}))
        lock = lockout_store.current_lock(attempt)
        if lock is not None:
            alerts.mark_refused(lock)  # the user_login_failed receiver: "blocked", not counted again
            mark_request(request, lock)
            raise PermissionDenied("Too many failed logins; try again later.")
        return None


def record_failed_login(request: Any, username: str | None) -> None:
    """Count a failed login for the lockout rules (from the ``user_login_failed`` receiver)."""
    if not lockout_enabled():
        return
    lock = lockout_store.count_failure(lockout_store.attempt_for(request, username), request)
    if lock is not None:
        mark_request(request, lock)  # the failure that locks is answered with 429 too (as django-axes does)


def on_user_logged_in(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    """``AUDIT_LOCKOUT_RESET_ON_SUCCESS``: a successful login forgets its keys' failures."""
    if lockout_enabled() and get_rules().reset_on_success and user is not None:
        lockout_store.clear_failures(lockout_store.attempt_for(request, user.get_username()))


def lockout_response(request: Any, lock: lockout_store.Lock) -> HttpResponse:
    """HTTP 429 with ``Retry-After`` (403 for a deny list): the template, JSON for API clients, else text."""
    retry_after = lock.retry_after
    status = 403 if retry_after is None else 429
    message = ("Logins from here are not allowed." if retry_after is None
               else f"Too many failed logins. Try again in {retry_after} seconds.")
    template = get_rules().template
    if template:
        body = render_to_string(template, {"retry_after": retry_after, "lockout_rule": lock.rule}, request=request)
        response = HttpResponse(body, status=status)
    elif request.accepts("application/json") and not request.accepts("text/html"):
        response = JsonResponse({"detail": message, "retry_after": retry_after}, status=status)
    else:
        response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


class LockoutMiddleware:
    """Answers a request whose login the lockout refused (or locked) with :func:`lockout_response`."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        response = self.get_response(request)
        lock = getattr(request, _LOCK, None)
        return response if lock is None else lockout_response(request, lock)

    async def __acall__(self, request: Any) -> Any:
        response = await self.get_response(request)
        lock = getattr(request, _LOCK, None)
        return response if lock is None else lockout_response(request, lock)
