"""``audit_management summary``: what happened in the last hours, from five aggregate queries.

The JSON form (``--format json``) is stable; ``docs/commands.md`` documents it.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.db.models import Count, Q
from django.db.models.functions import TruncHour

from rail_django.operations.common import now, printable, stored_events

LOGIN_FAILURE = "auth.login.failure"
LOGIN_SUCCESS = "auth.login.success"
ALERT = "security.alert"
TOP = 10


def _top(queryset, field: str, label: str) -> list[dict[str, Any]]:
    rows = (
        queryset.exclude(**{f"{field}__isnull": True})
        .values(field)
        .annotate(count=Count("pk"))
        .order_by("-count", field)[:TOP]
    )
    return [{label: row[field], "count": row["count"]} for row in rows if row[field] not in (None, "")]


def build_summary(hours: int = 24) -> dict[str, Any]:
    """Counts of the events stored in the last ``hours`` hours."""
    until = now()
    since = until - timedelta(hours=hours)
    window = stored_events().filter(timestamp__gte=since, timestamp__lte=until)

    # 1. every (type, severity, outcome) group
    by_type: Counter[str] = Counter()
    by_severity: Counter[str] = Counter()
    by_outcome: Counter[str] = Counter()
    logins: Counter[str] = Counter()
    groups = window.values("event_type", "severity", "success", "additional_data__outcome").annotate(n=Count("pk"))
    for group in groups.order_by():
        n = group["n"]
        outcome = group["additional_data__outcome"] or ("success" if group["success"] else "failure")
        by_type[group["event_type"]] += n
        by_severity[group["severity"]] += n
        by_outcome[str(outcome)] += n
        if group["event_type"] == LOGIN_SUCCESS:
            logins["succeeded"] += n
        elif group["event_type"] == LOGIN_FAILURE:
            logins["blocked" if outcome == "blocked" else "failed"] += n

    # 2-3. who failed to log in, and as whom
    failures = window.filter(event_type=LOGIN_FAILURE)
    top_ips = _top(failures, "client_ip", "ip")
    top_usernames = _top(failures, "additional_data__context__username_attempted", "username")

    # 4. alerts by rule
    alert_rules = (
        window.filter(event_type=ALERT).values("additional_data__context__rule").annotate(n=Count("pk")).order_by()
    )
    by_rule = {str(row["additional_data__context__rule"] or "other"): row["n"] for row in alert_rules}

    # 5. per-hour histogram (UTC hours)
    hourly = (
        window.annotate(hour=TruncHour("timestamp", tzinfo=dt_timezone.utc))
        .values("hour")
        .annotate(total=Count("pk"), failures=Count("pk", filter=Q(success=False)))
        .order_by("hour")
    )
    return {
        "window": {"hours": hours, "since": since.isoformat(), "until": until.isoformat()},
        "total": sum(by_type.values()),
        "by_type": dict(sorted(by_type.items())),
        "by_severity": dict(sorted(by_severity.items())),
        "by_outcome": dict(sorted(by_outcome.items())),
        "logins": {"succeeded": logins["succeeded"], "failed": logins["failed"], "blocked": logins["blocked"]},
        "top_failed_login_ips": top_ips,
        "top_targeted_usernames": top_usernames,
        "alerts": {"total": sum(by_rule.values()), "by_rule": dict(sorted(by_rule.items()))},
        "hourly": [
            {"hour": row["hour"].isoformat(), "total": row["total"], "failures": row["failures"]}
            for row in hourly
            if row["hour"] is not None
        ],
    }


def render_text(summary: dict[str, Any]) -> str:
    """The summary for a terminal, with a small per-hour histogram.

    Every stored value (event types, rules, IPs, attempted usernames) goes
    through :func:`~rail_django.operations.common.printable`: an attempted
    username is whatever an anonymous client typed, escape sequences included.
    """
    lines = [
        f"Audit events in the last {summary['window']['hours']} h (since {summary['window']['since']}): {summary['total']}",
        "",
        "Logins: {succeeded} succeeded, {failed} failed, {blocked} blocked".format(**summary["logins"]),
        f"Alerts raised: {summary['alerts']['total']}"
        + "".join(f"\n  {printable(rule)}: {n}" for rule, n in summary["alerts"]["by_rule"].items()),
    ]
    for title, key in (("By type", "by_type"), ("By severity", "by_severity"), ("By outcome", "by_outcome")):
        lines += ["", f"{title}:"] + [f"  {printable(name):<32} {n:>8}" for name, n in summary[key].items()]
    for title, key, label in (
        ("Top source IPs of failed logins", "top_failed_login_ips", "ip"),
        ("Top targeted usernames", "top_targeted_usernames", "username"),
    ):
        lines += ["", f"{title}:"] + [f"  {printable(row[label]):<32} {row['count']:>8}" for row in summary[key]]
        if not summary[key]:
            lines.append("  (none)")
    if summary["hourly"]:
        peak = max(row["total"] for row in summary["hourly"]) or 1
        lines += ["", "Per hour (UTC)    total  failures"]
        for row in summary["hourly"]:
            bar = "#" * max(1, round(40 * row["total"] / peak))
            lines.append(f"  {row['hour'][:13].replace('T', ' ')}h {row['total']:>7} {row['failures']:>9}  {bar}")
    return "\n".join(lines)
