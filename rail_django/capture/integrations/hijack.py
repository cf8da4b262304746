"""django-hijack: impersonation recorded, and every event of an impersonated session names the real user.

Active only when ``hijack`` is installed (:func:`install`, from ``ready()``):

- ``hijack_started`` -> ``auth.impersonation.started``; ``hijack_ended`` ->
  ``auth.impersonation.ended``. The actor of both is the impersonated user,
  ``context.impersonator`` / ``context.impersonator_id`` the real one.
- While a session is impersonating, django-hijack has logged the session in
  as the impersonated user (so ``request.user`` -- the actor -- is that user)
  and keeps the real user's primary key in the session (``hijack_history``,
  the first entry being the user who started it). A request enricher adds
  ``impersonator`` and ``impersonator_id`` to the context of every event
  emitted in such a request; it runs only when an event is built.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from rail_django.capture.context import add_request_enricher
from rail_django.events.types import EventType
from rail_django.security.api import security

SESSION_KEY = "hijack_history"
_MEMO = "_rail_django_impersonator"  # our attribute on the request: one user lookup per request


def _name(user: Any) -> dict[str, Any]:
    return {"impersonator": user.get_username(), "impersonator_id": str(user.pk)}


def impersonator_of(request: Any) -> dict[str, Any] | None:
    """``{"impersonator": username, "impersonator_id": pk}`` while ``request``'s session impersonates."""
    session = getattr(request, "session", None)
    if session is None:
        return None
    history = session.get(SESSION_KEY)
    if not history:
        return None
    memo = getattr(request, _MEMO, None)
    if memo is not None and memo[0] == history[0]:
        return memo[1]
    real = get_user_model()._default_manager.filter(pk=history[0]).first()
    found = _name(real) if real is not None else {"impersonator": None, "impersonator_id": str(history[0])}
    setattr(request, _MEMO, (history[0], found))
    return found


def _emit(event_type: EventType, request: Any, hijacker: Any, hijacked: Any, verb: str) -> None:
    security.emit(
        event_type,
        request=request,
        user=hijacked,
        action=f"{hijacker.get_username()} {verb} impersonating {hijacked.get_username()}",
        context=_name(hijacker),
        resource_type=hijacked._meta.label_lower,
        resource_id=hijacked.pk,
        resource_name=hijacked.get_username(),
    )


def on_hijack_started(sender: Any = None, hijacker: Any = None, hijacked: Any = None, request: Any = None,
                      **kwargs: Any) -> None:
    _emit(EventType.AUTH_IMPERSONATION_STARTED, request, hijacker, hijacked, "started")


def on_hijack_ended(sender: Any = None, hijacker: Any = None, hijacked: Any = None, request: Any = None,
                    **kwargs: Any) -> None:
    _emit(EventType.AUTH_IMPERSONATION_ENDED, request, hijacker, hijacked, "stopped")


def install() -> None:
    from hijack import signals

    signals.hijack_started.connect(on_hijack_started, dispatch_uid="rail_django.hijack.started")
    signals.hijack_ended.connect(on_hijack_ended, dispatch_uid="rail_django.hijack.ended")
    add_request_enricher(impersonator_of)
