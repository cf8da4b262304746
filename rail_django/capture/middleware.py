"""``SecurityContextMiddleware``: captures each request's audit context."""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured, PermissionDenied

from rail_django.capture.context import AuditContext, _current, new_correlation_id

CORRELATION_HEADER = "X-Correlation-ID"
#: Raised (as ``ImproperlyConfigured``) when the middleware is used without the app.
NOT_INSTALLED_ID = "rail_django.E061"


class SecurityContextMiddleware:
    """Puts the request in a context variable for the events emitted while it runs.

    Only cheap facts are taken here (a reference to the request and a
    correlation id); the actor, client IP and session are read when an event
    is emitted, so the middleware may sit anywhere in ``MIDDLEWARE``. The
    correlation id (a well-formed ``X-Request-ID`` / ``X-Correlation-ID`` from
    a sender ``RAIL_DJANGO_ACCEPT_REQUEST_ID_FROM`` allows, or a new one) is
    echoed in the ``X-Correlation-ID`` response header.

    Without ``"rail_django"`` in ``INSTALLED_APPS`` no receiver, sink or check
    is set up and nothing would be recorded, so building the middleware (at
    server start-up or the first request) raises ``ImproperlyConfigured``
    (``rail_django.E061``); a system check cannot say it, since the app that
    would register it is the one missing.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        if not apps.is_installed("rail_django"):
            raise ImproperlyConfigured(
                f"{NOT_INSTALLED_ID}: SecurityContextMiddleware is in MIDDLEWARE but 'rail_django' is not in "
                "INSTALLED_APPS, so no audit event would be recorded. Add 'rail_django' to INSTALLED_APPS "
                "(or remove the middleware)."
            )
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        # Issue 14: Django REST framework's error responses become events (only when DRF is installed).
        from rail_django.capture.integrations import drf

        drf.bind_hooks(self, self.is_async)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        meta = request.META
        if "HTTP_X_REQUEST_ID" in meta or "HTTP_X_CORRELATION_ID" in meta:
            ctx = AuditContext.for_request(request)
        else:  # the usual case, inlined: this runs on every request
            ctx = AuditContext(request, new_correlation_id())
        request._rail_django_audit_context = ctx
        token = _current.set(ctx)  # the context variable itself: this runs on every request
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        response[CORRELATION_HEADER] = ctx.correlation_id
        return response

    def process_exception(self, request: Any, exception: Exception) -> None:
        """``PermissionDenied`` raised by a view -> ``authz.permission.denied`` (Django sends no signal for it).

        Added for issue 14; returns ``None`` so Django goes on to its own 403 handling.
        """
        if isinstance(exception, PermissionDenied):
            from rail_django.capture.permissions import record_permission_denied

            record_permission_denied(request, exception)
        return None

    async def __acall__(self, request: Any) -> Any:
        ctx = AuditContext.for_request(request)
        request._rail_django_audit_context = ctx
        token = _current.set(ctx)
        try:
            response = await self.get_response(request)
        finally:
            _current.reset(token)
        response[CORRELATION_HEADER] = ctx.correlation_id
        return response
