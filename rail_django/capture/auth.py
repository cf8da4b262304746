"""Receivers for Django's auth signals, connected in ``RailDjangoConfig.ready()``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from rail_django.alerts import failed_logins as alerts
from rail_django.alerts.lockout import record_failed_login as count_for_lockout
from rail_django.events.types import EventType, Outcome, Severity
from rail_django.security.api import security


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
    username = attempted_username(credentials)
    lockout = alerts.pop_refused()
    if lockout is not None:  # refused by LockoutBackend: recorded, not counted again
        security.emit(
            EventType.AUTH_LOGIN_FAILURE,
            request=request,
            outcome=Outcome.BLOCKED,
            severity=Severity.WARNING,
            action="Login refused: too many failed logins",
            context={"username_attempted": username, "lockout_rule": lockout.rule},
            error="Locked out",
        )
        return
    event = security.emit(
        EventType.AUTH_LOGIN_FAILURE,
        request=request,
        outcome=Outcome.FAILURE,
        severity=Severity.WARNING,
        action="Login attempt failed",
        context={"username_attempted": username},
        error="Invalid credentials",
    )
    if event is not None:
        alerts.record_failed_login(
            client_ip=event.client_ip, username=event.context.get("username_attempted"), request=request
        )
        count_for_lockout(request, username)  # the lockout rules count the username as typed
