"""List filters of the audit-event admin.

The choices come from rail-django's own vocabulary (event types, severities,
outcomes, dashboard windows), never from ``SELECT DISTINCT`` over the table,
so drawing the sidebar costs no query however many rows there are. Each
filter narrows on an indexed column where one exists.

The "pinned" filters (IP, correlation id, username, attempted username) are
the targets of the links on an event's page and on the dashboard: they show
in the sidebar only while active, with an "All" link to clear them.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import QuerySet

from rail_django.events.types import EventType, Outcome, Severity
from rail_django.read.dashboard import ATTEMPTED_USERNAME, LOGIN_FAILURE, WINDOWS, window_start

MAX_FILTER_VALUE = 255


class _ChoiceFilter(admin.SimpleListFilter):
    """A filter over a fixed vocabulary; an unknown value is shown as an extra choice."""

    field = ""
    vocabulary: list[tuple[str, str]] = []
    allow_unknown = True

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        choices = list(self.vocabulary)
        value = self.value()
        if value and self.allow_unknown and value not in {key for key, _ in choices}:
            choices.append((value, value))
        return choices

    def queryset(self, request: Any, queryset: QuerySet) -> QuerySet | None:
        value = self.value()
        if value is None:
            return None
        if len(value) > MAX_FILTER_VALUE or (not self.allow_unknown and value not in dict(self.vocabulary)):
            raise IncorrectLookupParameters(f"Unknown {self.parameter_name}: {value[:40]!r}")
        return queryset.filter(**{self.field: value})


class EventTypeFilter(_ChoiceFilter):
    title = "event type"
    parameter_name = "event_type"
    field = "event_type"
    vocabulary = [(t.value, t.value) for t in EventType]


class SeverityFilter(_ChoiceFilter):
    title = "severity"
    parameter_name = "severity"
    field = "severity"
    vocabulary = [(s.value, s.value) for s in Severity]


class OutcomeFilter(_ChoiceFilter):
    title = "outcome"
    parameter_name = "outcome"
    vocabulary = [(o.value, o.value) for o in Outcome]
    allow_unknown = False

    def queryset(self, request: Any, queryset: QuerySet) -> QuerySet | None:
        value = self.value()
        if value is None:
            return None
        if value not in dict(self.vocabulary):
            raise IncorrectLookupParameters(f"Unknown outcome: {value[:40]!r}")
        if value == Outcome.SUCCESS.value:
            return queryset.filter(success=True)
        # The indexed ``success`` column narrows first; the JSON outcome tells failure from denied etc.
        return queryset.filter(success=False, additional_data__outcome=value)


class WindowFilter(_ChoiceFilter):
    """The dashboard's windows: the same start, so the counts agree."""

    title = "time window"
    parameter_name = "window"
    vocabulary = [(w.key, w.label) for w in WINDOWS.values()]
    allow_unknown = False

    def queryset(self, request: Any, queryset: QuerySet) -> QuerySet | None:
        value = self.value()
        if value is None:
            return None
        if value not in WINDOWS:
            raise IncorrectLookupParameters(f"Unknown window: {value[:40]!r}")
        return queryset.filter(timestamp__gte=window_start(WINDOWS[value]))


class _PinnedFilter(admin.SimpleListFilter):
    """Shown only while active: the value itself is the one choice."""

    field = ""

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, value)] if value else []

    def clean(self, value: str) -> str:
        if len(value) > MAX_FILTER_VALUE:
            raise IncorrectLookupParameters(f"{self.parameter_name} is too long")
        return value

    def queryset(self, request: Any, queryset: QuerySet) -> QuerySet | None:
        value = self.value()
        if value is None:
            return None
        return queryset.filter(**{self.field: self.clean(value)})


class ClientIPFilter(_PinnedFilter):
    title = "client IP"
    parameter_name = "client_ip"
    field = "client_ip"

    def clean(self, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError as exc:
            raise IncorrectLookupParameters(f"Not an IP address: {value[:40]!r}") from exc


class CorrelationIdFilter(_PinnedFilter):
    title = "correlation id"
    parameter_name = "correlation_id"
    field = "correlation_id"


class UsernameFilter(_PinnedFilter):
    title = "user"
    parameter_name = "username"
    field = "username"


class AttemptedUsernameFilter(_PinnedFilter):
    """Failed logins that tried this username (an indexed lookup on PostgreSQL)."""

    title = "attempted username"
    parameter_name = "attempted"

    def queryset(self, request: Any, queryset: QuerySet) -> QuerySet | None:
        value = self.value()
        if value is None:
            return None
        return queryset.filter(event_type=LOGIN_FAILURE, **{ATTEMPTED_USERNAME: self.clean(value)})
