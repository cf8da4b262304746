"""Helpers the ``audit_management`` verbs share: the stored events, time ranges, who ran the command,
and :func:`printable` for every text a command writes."""

from __future__ import annotations

import getpass
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from rail_django.conf import get_config
from rail_django.models import get_audit_event_model


def _escapes() -> dict[int, str]:
    # C0 controls, DEL, C1 controls (NEL U+0085 included), the line and paragraph separators
    # and the bidirectional marks, embeddings, overrides and isolates (which reorder what a
    # terminal shows).
    codes = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, 0x200E, 0x200F, 0x061C,
             *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
    named = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
    return {code: named.get(code) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}") for code in codes}


_ESCAPES = _escapes()


def printable(value: Any) -> str:
    """``value`` as inert text for a terminal or a text report: one line, no control sequence.

    Stored events hold attacker-chosen text (an attempted username, a user
    agent). Written raw, ``\\x1b[2J`` clears the operator's screen and a
    newline forges a line of the report; here each control character becomes
    a visible escape (``\\x1b``, ``\\n``, ``\\u2028``). Every text output of
    rail-django's commands passes stored or external text through this.
    """
    return str(value).translate(_ESCAPES)


def stored_events() -> QuerySet:
    """Every stored event, on the audit database (``AUDIT_DATABASE_ALIAS``)."""
    return get_audit_event_model()._default_manager.using(get_config().database_alias)


def now() -> datetime:
    return timezone.now()


def as_stored(moment: datetime) -> datetime:
    """``moment`` in the form the timestamp column compares with (aware under ``USE_TZ``)."""
    if settings.USE_TZ and timezone.is_naive(moment):
        return timezone.make_aware(moment)
    if not settings.USE_TZ and timezone.is_aware(moment):
        return timezone.make_naive(moment)
    return moment


def parse_moment(text: str, flag: str) -> datetime:
    """An ISO 8601 date or date-time; naive values are in ``TIME_ZONE``. Bad text is a ``CommandError``."""
    try:
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text)
            moment = datetime(day.year, day.month, day.day) if day else None
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"{flag} {text!r} is not an ISO 8601 date or date-time (e.g. 2026-01-31 or 2026-01-31T08:00:00Z)")
    return as_stored(moment)


def time_range(days: int | None, since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """``(start, end)`` from ``--days`` or ``--since``/``--until``; start inclusive, end exclusive."""
    if days is not None and (since or until):
        raise CommandError("use either --days or --since/--until, not both")
    if days is not None:
        return now() - timedelta(days=days), None
    start = parse_moment(since, "--since") if since else None
    end = parse_moment(until, "--until") if until else None
    if start and end and start >= end:
        raise CommandError(f"--since ({since}) must be before --until ({until})")
    return start, end


def invoked_by() -> dict[str, Any]:
    """Who ran the command: operating-system user, host and process."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return {"os_user": user, "host": socket.gethostname(), "pid": os.getpid()}


@dataclass
class RunClock:
    """When a long-running command (``ingest``, ``drain``) started, for its events-per-second figure."""

    started: float = field(default_factory=time.monotonic, kw_only=True)

    def per_second(self, count: int) -> float:
        """``count`` over the seconds since the start (0 at the very start)."""
        elapsed = time.monotonic() - self.started
        return count / elapsed if elapsed > 0 else 0.0
