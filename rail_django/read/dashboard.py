"""The numbers behind the security dashboard, computed from stored events.

A window (``1h``, ``24h`` or ``7d``) is a run of whole buckets ending with
the bucket that holds "now": twelve 5-minute buckets, 24 hourly buckets or
168 hourly buckets. The admin list's "window" filter uses the same start
(:func:`window_start`), so a number on the dashboard and the list it links to
count the same rows.

Every figure is one indexed, grouped query (timestamp, event type + time);
nothing here loads events one by one except the ten most recent alerts and
failures shown as tables.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, F, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import TruncHour, TruncMinute
from django.utils import timezone

from rail_django.events.types import EventType, Severity

LOGIN_SUCCESS = EventType.AUTH_LOGIN_SUCCESS.value
LOGIN_FAILURE = EventType.AUTH_LOGIN_FAILURE.value
ALERT = EventType.SECURITY_ALERT.value
ATTEMPTED_USERNAME = "additional_data__context__username_attempted"


@dataclass(frozen=True)
class Window:
    """A dashboard time window: ``count`` buckets of ``bucket_minutes`` each."""

    key: str
    label: str
    bucket_minutes: int
    count: int

    @property
    def bucket(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.bucket_minutes)


WINDOWS: dict[str, Window] = {
    "1h": Window("1h", "Last hour", 5, 12),
    "24h": Window("24h", "Last 24 hours", 60, 24),
    "7d": Window("7d", "Last 7 days", 60, 168),
}
DEFAULT_WINDOW = "24h"


def get_window(key: str | None) -> Window:
    """The window named ``key``, or the default (24 h) for anything else."""
    return WINDOWS.get(str(key or ""), WINDOWS[DEFAULT_WINDOW])


def _floor(moment: dt.datetime, minutes: int) -> dt.datetime:
    if timezone.is_aware(moment):
        moment = moment.astimezone(dt.timezone.utc)
    moment = moment.replace(second=0, microsecond=0)
    return moment - dt.timedelta(minutes=moment.minute % minutes)


def window_start(window: Window, now: dt.datetime | None = None) -> dt.datetime:
    """The first instant of ``window``: the start of its oldest bucket (UTC when time zones are on)."""
    now = now or timezone.now()
    return _floor(now, window.bucket_minutes) - window.bucket * (window.count - 1)


@dataclass
class Bar:
    """One bucket of the events chart, with its geometry in the SVG's units."""

    start: dt.datetime
    end: dt.datetime
    total: int
    failures: int
    x: float = 0.0
    width: float = 0.0
    y: float = 0.0
    height: float = 0.0
    failure_y: float = 0.0
    failure_height: float = 0.0
    tick: bool = False


@dataclass
class Chart:
    """The events-per-bucket chart: SVG size, bars and the y-axis maximum."""

    width: int
    height: int
    plot_height: int
    bars: list[Bar]
    max_total: int
    bucket_label: str


@dataclass
class Dashboard:
    """Everything the dashboard page shows for one window."""

    window: Window
    start: dt.datetime
    now: dt.datetime
    total_events: int
    failed_events: int
    login_successes: int
    login_failures: int
    alert_count: int
    by_severity: list[tuple[str, int]]
    top_failure_ips: list[tuple[str, int]]
    top_targeted_usernames: list[tuple[str, int]]
    recent_alerts: list[Any]
    recent_failures: list[Any]
    chart: Chart
    windows: list[Window] = field(default_factory=lambda: list(WINDOWS.values()))


def _bucket_counts(queryset: QuerySet, window: Window, start: dt.datetime) -> dict[dt.datetime, int]:
    """Rows per bucket start. ``COUNT(*)`` grouped by the truncated time: an index-only scan where possible."""
    trunc = TruncMinute if window.bucket_minutes < 60 else TruncHour
    tzinfo = dt.timezone.utc if timezone.is_aware(start) else None
    rows = (
        queryset.annotate(slot=trunc("timestamp", tzinfo=tzinfo))
        .values("slot")
        .annotate(n=Count("*"))
        .order_by()
        .values_list("slot", "n")
    )
    counts: dict[dt.datetime, int] = {}
    for slot, n in rows:
        if slot is None:
            continue
        bucket = _floor(slot, window.bucket_minutes)
        if tzinfo is None and timezone.is_aware(bucket):
            bucket = bucket.replace(tzinfo=None)
        counts[bucket] = counts.get(bucket, 0) + n
    return counts


def build_chart(window: Window, start: dt.datetime, totals: dict, failures: dict) -> Chart:
    """Lay out one bar per bucket; the tallest bar fills the plot."""
    width, plot_height, axis = 720, 160, 22
    slot = width / window.count
    gap = min(2.0, slot * 0.2)
    bars = []
    for i in range(window.count):
        begin = start + window.bucket * i
        bars.append(Bar(begin, begin + window.bucket, totals.get(begin, 0), failures.get(begin, 0)))
    max_total = max([bar.total for bar in bars] + [1])
    tick_every = max(1, window.count // 6)
    for i, bar in enumerate(bars):
        bar.x = round(i * slot + gap / 2, 2)
        bar.width = round(slot - gap, 2)
        bar.height = round(plot_height * bar.total / max_total, 2)
        bar.y = round(plot_height - bar.height, 2)
        bar.failure_height = round(plot_height * bar.failures / max_total, 2)
        bar.failure_y = round(plot_height - bar.failure_height, 2)
        bar.tick = i % tick_every == 0
    label = f"{window.bucket_minutes} minutes" if window.bucket_minutes < 60 else "hour"
    return Chart(width, plot_height + axis, plot_height, bars, max_total, label)


def _top(queryset: QuerySet, column: Any, limit: int, *, empty: str | None = None) -> list[tuple[str, int]]:
    if empty:  # ``empty`` names the lookup whose "" value is skipped (an inet column cannot compare with "")
        queryset = queryset.exclude(**{empty: ""})
    rows = (
        queryset.annotate(key=column)
        .exclude(key__isnull=True)
        .values("key")
        .annotate(n=Count("pk"))
        .order_by("-n", "key")[:limit]
    )
    return [(str(row["key"]), row["n"]) for row in rows]


def build_dashboard(model: Any, window: Window, now: dt.datetime | None = None, limit: int = 10) -> Dashboard:
    """Compute the dashboard for ``window`` ending at ``now`` from ``model``'s rows."""
    now = now or timezone.now()
    start = window_start(window, now)
    events = model.objects.filter(timestamp__gte=start)
    logins = dict(
        events.filter(event_type__in=[LOGIN_SUCCESS, LOGIN_FAILURE])
        .values("event_type")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("event_type", "n")
    )
    severities = dict(events.values("severity").annotate(n=Count("pk")).order_by().values_list("severity", "n"))
    known = [s.value for s in Severity]
    by_severity = [(s, severities.get(s, 0)) for s in known]
    by_severity += sorted((s, n) for s, n in severities.items() if s not in known)
    failed_logins = events.filter(event_type=LOGIN_FAILURE)
    totals = _bucket_counts(events, window, start)
    failed_per_bucket = _bucket_counts(events.filter(success=False), window, start)
    return Dashboard(
        window=window,
        start=start,
        now=now,
        total_events=sum(n for _, n in by_severity),
        failed_events=sum(failed_per_bucket.values()),
        login_successes=logins.get(LOGIN_SUCCESS, 0),
        login_failures=logins.get(LOGIN_FAILURE, 0),
        alert_count=events.filter(event_type=ALERT).count(),
        by_severity=by_severity,
        top_failure_ips=_top(failed_logins, F("client_ip"), limit),
        top_targeted_usernames=_top(failed_logins, KT(ATTEMPTED_USERNAME), limit, empty=ATTEMPTED_USERNAME),
        recent_alerts=list(events.filter(event_type=ALERT).order_by("-timestamp", "-pk")[:limit]),
        recent_failures=list(failed_logins.order_by("-timestamp", "-pk")[:limit]),
        chart=build_chart(window, start, totals, failed_per_bucket),
    )
