"""``audit_management summary``: the numbers equal what was stored, from a handful of queries."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

pytestmark = pytest.mark.django_db(transaction=True)


def summary(*args: str) -> str:
    out = io.StringIO()
    call_command("audit_management", "summary", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def stored(insert):
    hour = timedelta(hours=1)
    for ip, user, n in (("203.0.113.9", "alice", 4), ("198.51.100.7", "alice", 1), ("198.51.100.7", "bob", 2)):
        insert(n, event_type="auth.login.failure", severity="warning", outcome="failure", client_ip=ip,
               context={"username_attempted": user}, age=2 * hour)
    insert(1, event_type="auth.login.failure", severity="warning", outcome="blocked", client_ip="203.0.113.9",
           context={"username_attempted": "alice", "lockout_rule": "failed_logins_per_user"}, age=hour)
    insert(3, event_type="auth.login.success", client_ip="192.0.2.1", user_id="1", username="carol", age=3 * hour)
    insert(1, event_type="security.alert", severity="critical", outcome="failure", client_ip="203.0.113.9",
           context={"rule": "failed_logins_per_ip", "key": "203.0.113.9", "count": 4, "window": 300}, age=2 * hour)
    insert(1, event_type="security.alert", severity="critical", outcome="failure",
           context={"rule": "failed_logins_per_user", "key": "alice", "count": 5, "window": 300}, age=2 * hour)
    insert(4, event_type="data.update", user_id="1", age=timedelta(minutes=10))
    insert(1, event_type="data.delete", severity="warning", outcome="denied", age=timedelta(minutes=10))
    # outside the default 24 hours
    insert(5, event_type="auth.login.failure", severity="warning", outcome="failure", client_ip="192.0.2.99",
           context={"username_attempted": "mallory"}, age=timedelta(hours=30))


def test_summary_json_counts_what_was_stored(stored, django_assert_max_num_queries):
    with django_assert_max_num_queries(5):
        report = json.loads(summary("--format", "json"))
    assert report["window"]["hours"] == 24
    assert report["total"] == 18
    assert report["by_type"] == {
        "auth.login.failure": 8, "auth.login.success": 3, "data.delete": 1, "data.update": 4, "security.alert": 2,
    }
    assert report["by_severity"] == {"critical": 2, "info": 7, "warning": 9}
    assert report["by_outcome"] == {"blocked": 1, "denied": 1, "failure": 9, "success": 7}
    assert report["logins"] == {"succeeded": 3, "failed": 7, "blocked": 1}
    assert report["top_failed_login_ips"] == [{"ip": "203.0.113.9", "count": 5}, {"ip": "198.51.100.7", "count": 3}]
    assert report["top_targeted_usernames"] == [{"username": "alice", "count": 6}, {"username": "bob", "count": 2}]
    assert report["alerts"] == {"total": 2, "by_rule": {"failed_logins_per_ip": 1, "failed_logins_per_user": 1}}
    assert sum(h["total"] for h in report["hourly"]) == 18
    assert sum(h["failures"] for h in report["hourly"]) == 11  # 8 login failures, 2 alerts, 1 denied
    assert all(h["hour"].endswith(":00:00+00:00") for h in report["hourly"])


def test_hours_widens_the_window(stored):
    report = json.loads(summary("--format", "json", "--hours", "48"))
    assert report["total"] == 23
    assert report["logins"]["failed"] == 12
    assert {"ip": "192.0.2.99", "count": 5} in report["top_failed_login_ips"]


def test_summary_text_has_the_totals_and_a_histogram(stored):
    text = summary()
    assert "Audit events in the last 24 h" in text and ": 18" in text.splitlines()[0]
    assert "Logins: 3 succeeded, 7 failed, 1 blocked" in text
    assert "Alerts raised: 2" in text
    assert "203.0.113.9" in text and "alice" in text
    histogram = text.split("Per hour (UTC)")[1].splitlines()[1:]
    assert len(histogram) >= 3 and all("#" in line for line in histogram)


def test_empty_table_gives_zeroes(audit_model):
    report = json.loads(summary("--format", "json"))
    assert report["total"] == 0 and report["hourly"] == [] and report["alerts"]["total"] == 0
    assert "Audit events in the last 24 h" in summary()


@pytest.mark.parametrize("args", [["--hours", "0"], ["--hours", "-4"], ["--format", "yaml"]])
def test_bad_flags(args):
    with pytest.raises(CommandError):
        summary(*args)
