"""``PermissionDenied`` raised in a Django view -> ``authz.permission.denied``.

Django turns the exception into a 403 response itself and sends no signal
for it (``got_request_exception`` is only for 500s), so
``SecurityContextMiddleware.process_exception`` calls :func:`record_permission_denied`.
One event per request, bounded per client by ``AUDIT_CLIENT_EVENT_LIMIT``.
"""

from __future__ import annotations

from typing import Any

from rail_django.capture.limits import within_client_limit
from rail_django.conf import get_config
from rail_django.events.types import EventType, Outcome
from rail_django.security.api import security

_RECORDED = "_rail_django_denial_recorded"  # our attribute on the request: one event per request


def first_denial(request: Any) -> bool:
    """True the first time a denial of this request is reported (marks the request)."""
    if getattr(request, _RECORDED, False):
        return False
    setattr(request, _RECORDED, True)
    return True


def record_permission_denied(request: Any, exception: BaseException, *, source: str = "django") -> None:
    """Record the denial of ``request`` (path and method come with the request)."""
    if not get_config().enabled or not first_denial(request):
        return
    if not within_client_limit(request, "permission_denied"):
        return
    match = getattr(request, "resolver_match", None)
    context: dict[str, Any] = {"source": source}
    if match is not None:
        context["view"] = match.view_name  # the URL name, or the view's dotted path when it has none
    reason = str(exception)
    security.emit(
        EventType.AUTHZ_PERMISSION_DENIED,
        request=request,
        outcome=Outcome.DENIED,
        action=f"{getattr(request, 'method', '')} {getattr(request, 'path', '')} denied",
        context=context,
        error=reason[:500] or "Permission denied",
    )
