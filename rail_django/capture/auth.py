"""Receivers for Django's auth signals, connected in ``RailDjangoConfig.ready()``.

A failed login records the username that was tried, as
``AUDIT_ATTEMPTED_USERNAME`` says (:func:`stored_username`): people type
their password into the username field, and what is stored reaches the
database, the file, the webhook, the dashboard and the summary. Counting for
alerts and lockout always uses the attempted name itself (normalised), never
what is stored.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.db import router, transaction
from django.db.models.signals import post_delete, post_migrate, post_save
from django.utils.crypto import salted_hmac

from rail_django.alerts import failed_logins as alerts
from rail_django.alerts.lockout import record_failed_login as count_for_lockout
from rail_django.conf import get_config
from rail_django.events.types import EventType, Outcome, Severity
from rail_django.security.api import security

logger = logging.getLogger("rail_django.audit")

#: Prefix of a stored username that is a keyed hash, not the text typed.
HASH_PREFIX = "hash:"
_HASH_SALT = "rail_django.capture.auth.attempted_username"
#: Seconds this process reuses an answer of :func:`user_exists` (a brute force repeats its names);
#: this process's own saves and deletes of users forget every answer at once.
KNOWN_USERNAME_SECONDS = 60.0
#: Answers kept at most; past that the memo starts again (a flood of unique names).
KNOWN_USERNAME_MAX = 4096
_known_usernames: dict[str, tuple[bool, float]] = {}


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


def username_hash(name: str) -> str:
    """``"hash:"`` + an HMAC-SHA256 of the normalised name, keyed from ``SECRET_KEY`` (32 hex digits).

    The same attempted name (any case, surrounding spaces) always gives the
    same hash, so repeated attempts still group in the summary and the
    dashboard; without ``SECRET_KEY`` nobody can test guesses against it.
    Rotating ``SECRET_KEY`` changes every hash.
    """
    normalised = alerts.normalise_username(name) or ""
    return HASH_PREFIX + salted_hmac(_HASH_SALT, normalised, algorithm="sha256").hexdigest()[:32]


def user_exists(name: str) -> bool:
    """Whether a user's ``USERNAME_FIELD`` equals ``name``, ignoring case (``False`` when the lookup fails).

    The answer is reused for :data:`KNOWN_USERNAME_SECONDS` (a brute force tries the same names
    again and again: one query per name and minute instead of one per failed login), unless it
    was read inside a transaction, which may still be rolled back. Saving or deleting a user in
    this process forgets every answer; another process's change is seen within that delay, and
    in the meantime a new user's name is stored as its hash, the cautious side.
    """
    now = time.monotonic()
    known = _known_usernames.get(name)
    if known is not None and now - known[1] < KNOWN_USERNAME_SECONDS:
        return known[0]
    model = get_user_model()
    field = getattr(model, "USERNAME_FIELD", "username")
    try:
        exists = model._default_manager.filter(**{f"{field}__iexact": name}).exists()
    except Exception:  # a database error must not fail the login; the hash is the safe answer
        logger.warning("Could not look up the attempted username; storing its hash", exc_info=True)
        return False
    if transaction.get_autocommit(using=router.db_for_read(model)):
        if len(_known_usernames) >= KNOWN_USERNAME_MAX:
            _known_usernames.clear()
        _known_usernames[name] = (exists, now)
    return exists


def forget_known_usernames(**kwargs: Any) -> None:
    """Drop every remembered :func:`user_exists` answer (a user saved or deleted, a flush, a settings change)."""
    _known_usernames.clear()


def connect() -> None:
    """Forget the remembered usernames whenever users may have changed (from ``AppConfig.ready``)."""
    from django.core.signals import setting_changed

    model = get_user_model()
    post_save.connect(forget_known_usernames, sender=model, dispatch_uid="rail_django.known_usernames.save")
    post_delete.connect(forget_known_usernames, sender=model, dispatch_uid="rail_django.known_usernames.delete")
    post_migrate.connect(forget_known_usernames, dispatch_uid="rail_django.known_usernames.migrate")  # flush too
    setting_changed.connect(forget_known_usernames, dispatch_uid="rail_django.known_usernames.settings")


def stored_username(name: str | None) -> str | None:
    """What a failed login stores as ``username_attempted`` for the attempted ``name``.

    ``AUDIT_ATTEMPTED_USERNAME``: ``"always"`` the name as typed; ``"known"``
    (the default) the name when such a user exists, else :func:`username_hash`;
    ``"hash"`` always the hash.
    """
    if name is None:
        return None
    mode = get_config().attempted_username
    if mode == "always" or (mode == "known" and user_exists(name)):
        return name
    return username_hash(name)


def _session_event(event_type: EventType, action: str, request: Any, user: Any) -> None:
    security.emit(
        event_type, request=request, user=user, outcome=Outcome.SUCCESS, severity=Severity.INFO, action=action
    )


def on_user_logged_in(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    _session_event(EventType.AUTH_LOGIN_SUCCESS, "User logged in", request, user)


def on_user_logged_out(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    _session_event(EventType.AUTH_LOGOUT, "User logged out", request, user)


def on_user_login_failed(sender: Any, credentials: dict[str, Any] | None = None, request: Any = None, **kwargs: Any) -> None:
    # Only the attempted username is kept: the credentials dict also carries
    # the (masked) password and any other field a backend accepted.
    lockout = alerts.pop_refused()
    if not get_config().enabled:
        return
    username = attempted_username(credentials)
    stored = stored_username(username)
    if lockout is not None:  # refused by LockoutBackend: recorded, not counted again
        security.emit(
            EventType.AUTH_LOGIN_FAILURE,
            request=request,
            outcome=Outcome.BLOCKED,
            severity=Severity.WARNING,
            action="Login refused: too many failed logins",
            context={"username_attempted": stored, "lockout_rule": lockout.rule},
            error="Locked out",
        )
        return
    event = security.emit(
        EventType.AUTH_LOGIN_FAILURE,
        request=request,
        outcome=Outcome.FAILURE,
        severity=Severity.WARNING,
        action="Login attempt failed",
        context={"username_attempted": stored},
        error="Invalid credentials",
    )
    if event is not None:  # counted on the name tried, whatever is stored
        alerts.record_failed_login(client_ip=event.client_ip, username=username, request=request)
        count_for_lockout(request, username)  # the lockout rules count the username as typed
