"""Django REST framework: its authentication, permission and throttling failures become events.

Active only when ``rest_framework`` is installed (:func:`install`, from
``ready()``). No code in the project:

- The actor: DRF's ``Request.user`` setter also sets ``user`` on Django's
  request, which is what rail-django reads when an event is emitted; so every
  event emitted in a view authenticated by ``TokenAuthentication``, SimpleJWT
  or any other DRF authenticator names the DRF user.
- The failures: DRF turns its exceptions into responses itself (no signal,
  no ``process_exception``) and marks them ``response.exception = True``.
  ``SecurityContextMiddleware`` gets a ``process_template_response`` hook
  (DRF's ``Response`` is a ``SimpleTemplateResponse``) that reads the status
  and the error code DRF puts in the body:

  ==========================================  ==========================
  DRF exception (error code)                  event
  ==========================================  ==========================
  ``AuthenticationFailed``, SimpleJWT's       ``auth.token.invalid``
  ``InvalidToken`` (and other 401s)
  ``NotAuthenticated``, ``PermissionDenied``  ``authz.permission.denied``
  ``Throttled`` (429)                         ``rate.limit.exceeded``
  ==========================================  ==========================

  A failed SimpleJWT token request (``no_active_account``) and a failed HTTP
  Basic login are already recorded by Django's ``user_login_failed`` signal as
  ``auth.login.failure``, and are not recorded twice. Events are bounded per
  client by ``AUDIT_CLIENT_EVENT_LIMIT``.
"""

from __future__ import annotations

import types
from typing import Any

from rail_django.conf import get_config
from rail_django.events.types import EventType, Outcome

#: Error codes of a credential that was presented and refused (DRF's and SimpleJWT's).
TOKEN_CODES = frozenset({
    "authentication_failed", "token_not_valid", "user_not_found", "user_inactive",
    "bad_authorization_header", "password_changed",
})
#: Already recorded as ``auth.login.failure`` through Django's ``user_login_failed``.
LOGIN_CODES = frozenset({"no_active_account"})
_DENIAL_CODES = frozenset({"not_authenticated", "permission_denied"})

active = False


def install() -> None:
    """Turn the response hook on (``SecurityContextMiddleware`` reads this flag when Django loads it)."""
    global active
    active = True


def error_code(data: Any) -> str | None:
    """The error code of a DRF error body: SimpleJWT's ``code`` key, else the ``detail``'s ``ErrorDetail.code``."""
    if not isinstance(data, dict):
        return None
    code = data.get("code")
    if isinstance(code, str) and code:
        return str(code)
    return getattr(data.get("detail"), "code", None)


def classify(status: int, code: str | None, authorization: str) -> EventType | None:
    """The event for a DRF error response, or ``None`` when there is none to record."""
    if status == 429:
        return EventType.RATE_LIMIT_EXCEEDED
    if status not in (401, 403) or code in LOGIN_CODES:
        return None
    if code in _DENIAL_CODES:
        return EventType.AUTHZ_PERMISSION_DENIED
    if authorization.lower().startswith("basic "):
        return None  # a password: Django's user_login_failed recorded it
    if code in TOKEN_CODES or status == 401:
        return EventType.AUTH_TOKEN_INVALID
    return EventType.AUTHZ_PERMISSION_DENIED


def record_failure(request: Any, response: Any) -> None:
    """Record the failure a DRF error response reports (at most one per request)."""
    from rail_django.capture.limits import within_client_limit
    from rail_django.capture.permissions import first_denial
    from rail_django.security.api import security

    status = response.status_code
    code = error_code(getattr(response, "data", None))
    authorization = str(request.META.get("HTTP_AUTHORIZATION", ""))
    event_type = classify(status, code, authorization)
    if event_type is None or not get_config().enabled or not first_denial(request):
        return
    if not within_client_limit(request, f"drf:{event_type.value}"):
        return
    match = getattr(request, "resolver_match", None)
    context: dict[str, Any] = {"source": "rest_framework", "code": code, "status_code": status}
    if match is not None:
        context["view"] = match.view_name
    if authorization:
        context["scheme"] = authorization.split(" ", 1)[0][:20]  # "Bearer", "Token": never the credential
    if event_type is EventType.RATE_LIMIT_EXCEEDED and response.has_header("Retry-After"):
        context["retry_after"] = response["Retry-After"]
    detail = response.data.get("detail") if isinstance(response.data, dict) else None
    security.emit(
        event_type,
        request=request,
        outcome=Outcome.BLOCKED if event_type is EventType.RATE_LIMIT_EXCEEDED else Outcome.DENIED,
        action=f"{request.method} {request.path}: {code or status}",
        context=context,
        error=str(detail)[:500] if detail else None,
    )


def process_template_response(middleware: Any, request: Any, response: Any) -> Any:
    """The middleware hook: only DRF's error responses carry ``exception = True``."""
    if getattr(response, "exception", False) is True:
        record_failure(request, response)
    return response


async def aprocess_template_response(middleware: Any, request: Any, response: Any) -> Any:
    """:func:`process_template_response` for an async middleware chain (no thread hop for other responses)."""
    if getattr(response, "exception", False) is True:
        from asgiref.sync import sync_to_async

        await sync_to_async(record_failure, thread_sensitive=True)(request, response)
    return response


def bind_hooks(middleware: Any, is_async: bool) -> None:
    """Give one ``SecurityContextMiddleware`` instance its response hook, when DRF is installed."""
    if active:  # bound to the instance: Django names the middleware through the method's __self__
        hook = aprocess_template_response if is_async else process_template_response
        middleware.process_template_response = types.MethodType(hook, middleware)
