"""Receivers for Django's auth signals, connected in ``RailDjangoConfig.ready()``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from rail_django.security.api import security
from rail_django.security.events import EventType, Outcome, Severity


def attempted_username(credentials: dict[str, Any] | None) -> str | None:
    """The username a failed login tried, from the (already cleansed) credentials."""
    if not credentials:
        return None
    field = getattr(get_user_model(), "USERNAME_FIELD", "username")
    for key in (field, "username", "email", "login"):
        value = credentials.get(key)
        if value:
            return str(value)[:150]
    return None


def on_user_logged_in(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    security.emit(
        EventType.AUTH_LOGIN_SUCCESS,
        request=request,
        user=user,
        outcome=Outcome.SUCCESS,
        severity=Severity.INFO,
        action="User logged in",
    )


def on_user_logged_out(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    security.emit(
        EventType.AUTH_LOGOUT,
        request=request,
        user=user,
        outcome=Outcome.SUCCESS,
        severity=Severity.INFO,
        action="User logged out",
    )


def on_user_login_failed(sender: Any, credentials: dict[str, Any] | None = None, request: Any = None, **kwargs: Any) -> None:
    # Only the attempted username is kept: the credentials dict also carries
    # the (masked) password and any other field a backend accepted.
    security.emit(
        EventType.AUTH_LOGIN_FAILURE,
        request=request,
        outcome=Outcome.FAILURE,
        severity=Severity.WARNING,
        action="Login attempt failed",
        context={"username_attempted": attempted_username(credentials)},
        error="Invalid credentials",
    )
