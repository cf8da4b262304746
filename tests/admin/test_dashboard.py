"""The security dashboard: its numbers equal the stored events, its links agree with the list, and it escapes."""

from __future__ import annotations

import html
import re

import pytest
import time_machine

from tests.admin.conftest import NOW, logged_in_client, make_event, store

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/admin/rail_django/auditeventmodel/"
DASHBOARD = f"{LIST}dashboard/"


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def events(audit_model, frozen):
    def ev(minutes_ago, **fields):
        return make_event(audit_model, minutes_ago=minutes_ago, now=NOW, **fields)

    def failure(minutes_ago, ip, tried):
        return ev(minutes_ago, event_type="auth.login.failure", severity="warning", outcome="failure",
                  client_ip=ip, context={"username_attempted": tried})

    return store(
        audit_model,
        ev(2, event_type="auth.login.success", username="alice", user_id="1", client_ip="198.51.100.1"),
        ev(50, event_type="auth.login.success", username="bob", user_id="2", client_ip="198.51.100.2"),
        failure(5, "203.0.113.9", "root"),
        failure(6, "203.0.113.9", "root"),
        failure(7, "203.0.113.9", "root"),
        failure(10, "192.0.2.44", "alice"),
        failure(70, "192.0.2.44", "alice"),
        failure(60 * 20, "203.0.113.9", "alice"),
        ev(8, event_type="security.alert", severity="critical", outcome="failure", action="5 failed logins for one username within 300s",
           context={"rule": "failed_logins_per_user", "key": "root", "count": 5, "window": 300}),
        ev(65, event_type="data.update", username="alice", user_id="1"),
        ev(60 * 23.5, event_type="data.read", username="bob", user_id="2", severity="debug"),
        ev(60 * 23 + 40, event_type="data.read", username="bob", user_id="2"),  # before the 24 h window's first hour
        ev(60 * 24 * 10, event_type="data.read", username="bob", user_id="2"),  # older than every window
    )


def _page(client, window):
    response = client.get(DASHBOARD, {"window": window})
    assert response.status_code == 200
    return response, response.content.decode()


@pytest.mark.parametrize(
    ("window", "numbers"),
    [
        ("1h", {"total_events": 7, "failed_events": 5, "login_successes": 2, "login_failures": 4, "alert_count": 1}),
        ("24h", {"total_events": 11, "failed_events": 7, "login_successes": 2, "login_failures": 6, "alert_count": 1}),
        ("7d", {"total_events": 12, "failed_events": 7, "login_successes": 2, "login_failures": 6, "alert_count": 1}),
    ],
)
def test_numbers_equal_the_stored_events(su_client, events, window, numbers):
    response, text = _page(su_client, window)
    dashboard = response.context["dashboard"]
    assert {name: getattr(dashboard, name) for name in numbers} == numbers
    card = {"total_events": "events", "failed_events": "failed", "login_successes": "login-success",
            "login_failures": "login-failure", "alert_count": "alerts"}
    for name, value in numbers.items():
        assert re.search(rf'id="card-{card[name]}"><a href="[^"]*"><span class="rail-number">{value}</span>', text), name
    bars = [(int(t), int(f)) for t, f in re.findall(r'data-total="(\d+)" data-failures="(\d+)"', text)]
    assert sum(t for t, _ in bars) == numbers["total_events"]
    assert sum(f for _, f in bars) == numbers["failed_events"]


def test_chart_puts_each_event_in_its_bucket(su_client, events):
    response, text = _page(su_client, "1h")
    bars = [(int(t), int(f)) for t, f in re.findall(r'data-total="(\d+)" data-failures="(\d+)"', text)]
    # Twelve 5-minute bars from 13:40 to 14:35 UTC; now is 14:37:20.
    assert len(bars) == 12
    assert bars == [(0, 0), (1, 0), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (2, 2), (3, 3), (1, 0)]
    assert "<script" not in text.split('id="rail-chart"')[1].split("</svg>")[0]
    assert len(re.findall(r'data-total="', _page(su_client, "24h")[1])) == 24
    assert len(re.findall(r'data-total="', _page(su_client, "7d")[1])) == 168


def test_top_ips_and_targeted_usernames(su_client, events):
    dashboard = _page(su_client, "1h")[0].context["dashboard"]
    assert dashboard.top_failure_ips == [("203.0.113.9", 3), ("192.0.2.44", 1)]
    assert dashboard.top_targeted_usernames == [("root", 3), ("alice", 1)]
    dashboard = _page(su_client, "24h")[0].context["dashboard"]
    assert dashboard.top_failure_ips == [("203.0.113.9", 4), ("192.0.2.44", 2)]
    assert dashboard.top_targeted_usernames == [("alice", 3), ("root", 3)]
    assert dashboard.by_severity == [("debug", 1), ("info", 3), ("warning", 6), ("error", 0), ("critical", 1)]


def test_recent_alerts_and_failures_are_listed(su_client, events):
    response, text = _page(su_client, "24h")
    alerts = text.split('id="recent-alerts"')[1].split("</table>")[0]
    assert "5 failed logins for one username within 300s" in alerts and "failed_logins_per_user" in alerts
    failures = text.split('id="recent-failures"')[1].split("</table>")[0]
    assert failures.count("<tr>") == 1 + 6  # header + six failures, newest first
    assert failures.index("203.0.113.9") < failures.index("192.0.2.44")


def test_every_link_leads_to_a_list_with_the_same_count(su_client, events):
    for window in ("1h", "24h"):
        response, text = _page(su_client, window)
        dashboard = response.context["dashboard"]
        checks = {
            "card-events": dashboard.total_events,
            "card-failed": dashboard.failed_events,
            "card-login-success": dashboard.login_successes,
            "card-login-failure": dashboard.login_failures,
            "card-alerts": dashboard.alert_count,
        }
        for card, expected in checks.items():
            url = html.unescape(re.search(rf'id="{card}"><a href="([^"]+)"', text).group(1))
            assert su_client.get(url).context["cl"].result_count == expected, (window, card)
        for table, rows in (("top-ips", dashboard.top_failure_ips), ("top-usernames", dashboard.top_targeted_usernames)):
            section = text.split(f'id="{table}"')[1].split("</table>")[0]
            for (value, count), url in zip(rows, re.findall(r'<a href="([^"]+)">', section), strict=True):
                assert su_client.get(html.unescape(url)).context["cl"].result_count == count, (window, value)


def test_unknown_window_falls_back_to_24_hours(su_client, events):
    response, text = _page(su_client, "forever<script>")
    assert response.context["dashboard"].window.key == "24h"
    assert "forever" not in text


def test_empty_window_renders(su_client, frozen):
    response, text = _page(su_client, "1h")
    assert response.context["dashboard"].total_events == 0
    assert "No failed logins in this window." in text and "No alerts in this window." in text


def test_only_staff_who_may_view_events_see_it(client, auditor, plain_staff, events):
    assert client.get(DASHBOARD).status_code == 302
    assert logged_in_client(plain_staff).get(DASHBOARD).status_code == 403
    assert logged_in_client(auditor).get(DASHBOARD).status_code == 200


def test_works_offline(su_client, events):
    text = _page(su_client, "24h")[1]
    external = [url for url in re.findall(r'(?:src|href)="(https?://[^"]+)"', text)]
    assert external == []
    assert "<script src" not in text.split('id="content-main"')[1]
