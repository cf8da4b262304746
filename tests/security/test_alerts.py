"""Failed-login alerts and lockout, through the real LoginView and Django's cache framework."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import time_machine
from django.core.cache import cache, caches
from django.core.checks import run_checks
from django.db import connection
from django.test import override_settings

from rail_django.alerts import failed_logins as alerts
from rail_django.signals import security_alert
from tests.conftest import require_server

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
LOCKOUT_BACKENDS = ["rail_django.security.backends.LockoutBackend", "django.contrib.auth.backends.ModelBackend"]


def _thresholds(per_ip=100, per_user=100, window=300):
    return {"failed_logins_per_ip": per_ip, "failed_logins_per_user": per_user, "suspicious_activity_window": window}


@pytest.fixture(autouse=True)
def _fresh_counts():
    cache.clear()
    alerts.counter.reset()
    yield
    alerts.counter.reset()


@pytest.fixture
def signals():
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    security_alert.connect(receiver)
    yield received
    security_alert.disconnect(receiver)


def _fail(client, username="alice", ip="203.0.113.9"):
    response = client.post("/login/", {"username": username, "password": "wrong-password"}, REMOTE_ADDR=ip)
    assert response.status_code == 200  # the form re-renders: the login failed, the request did not
    return response


def _alerts(model):
    return list(model.objects.filter(event_type="security.alert").order_by("id"))


def test_failed_logins_from_one_ip_raise_one_alert_per_window(client, settings, audit_model, signals):
    settings.AUDIT_ALERT_THRESHOLDS = _thresholds(per_ip=3)
    for i in range(7):
        _fail(client, username=f"user{i}")

    [alert] = _alerts(audit_model)
    assert alert.severity == "critical"
    assert alert.success is False
    assert alert.additional_data["outcome"] == "failure"
    assert alert.additional_data["context"] == {
        "rule": "failed_logins_per_ip",
        "key": "203.0.113.9",
        "count": 3,
        "window": 300,
    }
    assert alert.client_ip == "203.0.113.9"
    assert audit_model.objects.filter(event_type="auth.login.failure").count() == 7

    [sent] = signals
    assert sent["rule"] == "failed_logins_per_ip" and sent["key"] == "203.0.113.9"
    assert sent["count"] == 3 and sent["window"] == 300
    assert sent["event"].event_id == alert.event_id


def test_failed_logins_for_one_username_alert_across_ips_and_letter_case(client, settings, audit_model, signals, user):
    # `user` is alice: an existing username is named in clear by the alert (AUDIT_ATTEMPTED_USERNAME = "known")
    settings.AUDIT_ALERT_THRESHOLDS = _thresholds(per_user=3)
    _fail(client, "alice", "198.51.100.1")
    _fail(client, "Alice", "198.51.100.2")
    assert _alerts(audit_model) == []
    _fail(client, " ALICE", "198.51.100.3")
    _fail(client, "alice", "198.51.100.4")

    [alert] = _alerts(audit_model)
    assert alert.additional_data["context"]["rule"] == "failed_logins_per_user"
    assert alert.additional_data["context"]["key"] == "alice"
    assert [s["rule"] for s in signals] == ["failed_logins_per_user"]


def test_failures_below_every_threshold_raise_nothing(client, settings, audit_model, signals):
    settings.AUDIT_ALERT_THRESHOLDS = _thresholds(per_ip=5, per_user=5)
    for i in range(4):
        _fail(client, "bob", f"192.0.2.{i}")
    for i in range(4):
        _fail(client, f"u{i}", "192.0.2.200")
    assert _alerts(audit_model) == [] and signals == []


def test_counts_older_than_the_window_expire_and_the_alert_rearms(client, settings, audit_model):
    settings.AUDIT_ALERT_THRESHOLDS = _thresholds(per_ip=3, window=60)
    start = datetime(2030, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    with time_machine.travel(start, tick=False) as clock:
        _fail(client, "a")
        _fail(client, "b")
        clock.shift(timedelta(seconds=61))  # the first two fall out of the window
        _fail(client, "c")
        _fail(client, "d")
        assert _alerts(audit_model) == []
        _fail(client, "e")  # three within 60 seconds
        assert len(_alerts(audit_model)) == 1
        clock.shift(timedelta(seconds=30))
        _fail(client, "f")  # still inside the alert's window: no second alert
        _fail(client, "g")
        assert len(_alerts(audit_model)) == 1
        clock.shift(timedelta(seconds=31))  # the alert's window is over; "f", "g" still count
        _fail(client, "h")
        alerts_now = _alerts(audit_model)
    assert len(alerts_now) == 2
    assert alerts_now[1].additional_data["context"]["count"] == 3


def test_signal_receiver_that_raises_does_not_break_the_login(client, settings, audit_model, user):
    settings.AUDIT_ALERT_THRESHOLDS = _thresholds(per_user=1)

    def broken(sender, **kwargs):
        raise RuntimeError("pager is down")

    security_alert.connect(broken)
    try:
        _fail(client, "alice")
    finally:
        security_alert.disconnect(broken)
    assert len(_alerts(audit_model)) == 1
    response = client.post("/login/", {"username": "alice", "password": "correct-horse-battery"})
    assert response.status_code == 302


def test_nothing_is_counted_when_audit_logging_is_off(client, settings, audit_model, signals):
    settings.AUDIT_ALERT_THRESHOLDS = _thresholds(per_ip=1)
    settings.GRAPHQL_ENABLE_AUDIT_LOGGING = False
    _fail(client)
    assert signals == [] and audit_model.objects.count() == 0


def test_processes_sharing_a_cache_raise_one_alert_per_key_and_window(settings, audit_model, signals):
    """Three counters sharing one cache stand for three worker processes; failures cross many buckets."""
    settings.AUDIT_ALERT_THRESHOLDS = _thresholds(per_ip=4, per_user=4, window=100)
    settings.AUDIT_ATTEMPTED_USERNAME = "always"  # alert keys in clear: no user "alice" exists here
    workers = [alerts.FailedLoginCounter() for _ in range(3)]
    raised = []
    start = datetime(2030, 1, 1, 0, 0, 0, tzinfo=timezone.utc)
    with time_machine.travel(start, tick=False) as clock:
        for step in range(45):  # one failure every 5 s for 225 s, the workers taking turns
            for event in workers[step % 3].record_failure(client_ip="198.51.100.20", username="Alice"):
                raised.append((step * 5, event.context["rule"], event.context["key"], event.context["count"]))
            clock.shift(timedelta(seconds=5))

    # The 4th failure (t=15 s) reaches both thresholds; each alert holds for its 100 s window, then
    # the failures still in the sliding window raise the next one at once.
    assert [(t, rule, key) for t, rule, key, _ in raised] == [
        (15, "failed_logins_per_ip", "198.51.100.20"), (15, "failed_logins_per_user", "alice"),
        (115, "failed_logins_per_ip", "198.51.100.20"), (115, "failed_logins_per_user", "alice"),
        (215, "failed_logins_per_ip", "198.51.100.20"), (215, "failed_logins_per_user", "alice"),
    ]
    assert [count for *_, count in raised[:2]] == [4, 4]
    assert all(count >= 4 for *_, count in raised)
    assert [s["rule"] for s in signals] == [rule for _, rule, _, _ in raised]
    assert audit_model.objects.filter(event_type="security.alert").count() == 6


def test_each_process_sees_the_others_failures_once_their_bucket_closes(settings, audit_model, signals):
    """Two counters sharing a cache stand for two worker processes."""
    settings.AUDIT_ALERT_THRESHOLDS = _thresholds(per_ip=6)
    worker_a, worker_b = alerts.FailedLoginCounter(), alerts.FailedLoginCounter()
    with time_machine.travel(datetime(2030, 1, 1, 0, 0, 1, tzinfo=timezone.utc), tick=False) as clock:
        worker_b.record_failure(client_ip="198.51.100.7", username=None)  # b remembers this bucket
        for _ in range(3):
            worker_a.record_failure(client_ip="198.51.100.7", username=None)
        clock.shift(timedelta(seconds=30))
        assert worker_b.record_failure(client_ip="198.51.100.7", username=None) == []  # 5 in the window
        [event] = worker_b.record_failure(client_ip="198.51.100.7", username=None)  # 6: a's three counted
        assert event.context["count"] == 6
        # a learns of the alert without raising a second one
        assert worker_a.record_failure(client_ip="198.51.100.7", username=None) == []
    assert [s["rule"] for s in signals] == ["failed_logins_per_ip"]


def test_a_user_created_after_a_failed_login_is_stored_in_clear_at_once(client, settings, audit_model, django_user_model):
    """The remembered "no such user" answer is forgotten when a user is saved (capture.auth.user_exists)."""
    settings.AUDIT_ATTEMPTED_USERNAME = "known"
    _fail(client, username="newcomer")
    django_user_model.objects.create_user("newcomer", password="a-long-password-1")
    _fail(client, username="newcomer")
    stored = [row.additional_data["context"]["username_attempted"]
              for row in audit_model.objects.filter(event_type="auth.login.failure").order_by("id")]
    assert stored[0].startswith("hash:") and stored[1] == "newcomer"


def test_a_username_answer_read_inside_a_transaction_is_not_remembered(django_assert_num_queries):
    from django.db import transaction

    from rail_django.capture import auth

    with transaction.atomic():
        assert auth.user_exists("ghost") is False
    with django_assert_num_queries(1):  # read again: the first answer might have been rolled back
        assert auth.user_exists("ghost") is False
    with django_assert_num_queries(0):  # read in autocommit: remembered
        assert auth.user_exists("ghost") is False


class _CountingCache:
    """Django's cache for one test, with each public call counted by name (issue 16: calls are round trips)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def counted(*args, **kwargs):
            self.calls.append(name)
            return method(*args, **kwargs)
        return counted


def test_a_bucket_new_to_this_process_is_added_first_and_a_known_one_incremented(settings, monkeypatch):
    """A brute force from many addresses meets new buckets: one ``add`` each, not a failed ``incr`` and an ``add``."""
    settings.AUDIT_ALERT_THRESHOLDS = _thresholds()
    counting = _CountingCache(caches["default"])
    monkeypatch.setattr(alerts, "caches", {"default": counting})
    worker, other = alerts.FailedLoginCounter(), alerts.FailedLoginCounter()
    with time_machine.travel(datetime(2030, 1, 1, 0, 0, 1, tzinfo=timezone.utc), tick=False):
        worker.record_failure(client_ip="198.51.100.30", username=None)
        assert counting.calls == ["add", "get_many"]  # new bucket; the window's closed buckets read once
        counting.calls.clear()
        worker.record_failure(client_ip="198.51.100.30", username=None)
        assert counting.calls == ["incr"]  # this process counted here: the bucket exists
        counting.calls.clear()
        other.record_failure(client_ip="198.51.100.30", username=None)  # another process: add meets the bucket
        assert counting.calls == ["add", "incr", "get_many"]
        assert worker.record_failure(client_ip="198.51.100.30", username=None) == []
    bucket = int(datetime(2030, 1, 1, 0, 0, 1, tzinfo=timezone.utc).timestamp() // 30)  # a tenth of the 300 s window
    assert caches["default"].get(f"{alerts._base_key(alerts.RULE_PER_IP, '198.51.100.30')}:{bucket}") == 4


def test_a_cleared_cache_is_noticed_and_counting_starts_again(client, settings, audit_model, signals):
    settings.AUDIT_ALERT_THRESHOLDS = _thresholds(per_ip=3)
    with time_machine.travel(datetime(2030, 1, 1, 0, 0, 1, tzinfo=timezone.utc), tick=False):
        for i in range(3):
            _fail(client, username=f"user{i}")
        assert len(signals) == 1
        cache.clear()  # e.g. Redis restarted: counts and the alert marker are gone
        for i in range(3):
            _fail(client, username=f"other{i}")
    # the remembered marker and counts went with the cache: the alert is raised again
    assert [s["count"] for s in signals] == [3, 3]


# -- cache failure -----------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_at(port: int) -> dict:
    return {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "alerts": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        },
    }


def test_redis_down_logins_still_work_and_alerts_count_per_process(client, settings, audit_model, user, caplog):
    settings.CACHES = _redis_at(_closed_port())
    settings.AUDIT_CACHE_ALIAS = "alerts"
    settings.AUDIT_ALERT_THRESHOLDS = _thresholds(per_ip=3)
    with caplog.at_level(logging.WARNING, logger="rail_django.audit"):
        for name in ("x", "y", "z", "w"):
            _fail(client, name)
        response = client.post("/login/", {"username": "alice", "password": "correct-horse-battery"})
    assert response.status_code == 302  # the real login still goes through

    assert len(_alerts(audit_model)) == 1  # counted in this process meanwhile
    warnings = [r for r in caplog.records if "failed logins are counted per process" in r.getMessage()]
    assert len(warnings) == 1
    assert "'alerts'" in warnings[0].getMessage()


def test_a_hanging_cache_is_waited_on_once_per_retry_period(client, settings):
    """A cache that accepts connections and never answers: only the first request meets its timeout."""
    with socket.socket() as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(64)
        settings.CACHES = _redis_at(hanging.getsockname()[1])
        settings.AUDIT_CACHE_ALIAS = "alerts"
        for name in ("a", "b", "c", "d", "e"):
            _fail(client, name)
        hanging.setblocking(False)
        connections = 0
        while True:
            try:
                conn, _ = hanging.accept()
            except BlockingIOError:
                break
            conn.close()
            connections += 1
    assert connections == 1


def test_counting_returns_to_the_shared_cache_when_it_recovers(client, settings, caplog):
    settings.CACHES = _redis_at(_closed_port())
    settings.AUDIT_CACHE_ALIAS = "alerts"
    _fail(client, "a")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.AUDIT_CACHE_ALIAS = "default"
    alerts.counter._down_until = 0.0  # the retry period is over
    with caplog.at_level(logging.WARNING, logger="rail_django.audit"):
        _fail(client, "b")
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    assert any(key.startswith(":1:rail_django:failed_logins") for key in caches["default"]._cache)


@pytest.mark.slow
def test_alerts_count_across_processes_sharing_redis(audit_model, signals):
    require_server("redis", "127.0.0.1", 6379)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.security.alert_worker_settings",
        "RAIL_ALERT_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "RAIL_ALERT_TEST_KEY_PREFIX": f"rail-test-{uuid.uuid4().hex}",
        "PYTHONPATH": str(ROOT),
    }
    # Each worker fails 4 logins from the same IP; the threshold is 6, so only the shared count can reach it.
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.security.alert_worker", "203.0.113.50", "4", name],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name in ("first", "second")
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    assert all(r["statuses"] == [200] * 4 for r in results)
    assert sorted(rule for r in results for rule in r["alerts"]) == ["failed_logins_per_ip"]
    [alert] = _alerts(audit_model)
    assert alert.additional_data["context"]["key"] == "203.0.113.50"
    assert alert.additional_data["context"]["count"] == 6
    assert audit_model.objects.filter(event_type="auth.login.failure", client_ip="203.0.113.50").count() == 8


# -- lockout ------------------------------------------------------------------------


# The lockout rules themselves (what is locked, for how long, 429) are tested in tests/events/test_lockout.py.


def test_without_lockout_an_alert_does_not_block_logins(client, settings, user):
    settings.AUTHENTICATION_BACKENDS = LOCKOUT_BACKENDS  # listed, but AUDIT_LOCKOUT_ENABLED is off by default
    settings.AUDIT_ALERT_THRESHOLDS = _thresholds(per_user=1)
    _fail(client, "alice")
    assert client.post("/login/", {"username": "alice", "password": "correct-horse-battery"}).status_code == 302


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"AUDIT_LOCKOUT_ENABLED": "yes"}, ["rail_django.E030"]),
        ({"AUDIT_LOCKOUT_ENABLED": True}, ["rail_django.E031"]),
        ({"AUDIT_LOCKOUT_ENABLED": True, "AUTHENTICATION_BACKENDS": LOCKOUT_BACKENDS[::-1]}, ["rail_django.E031"]),
        ({"AUDIT_LOCKOUT_ENABLED": True, "AUTHENTICATION_BACKENDS": LOCKOUT_BACKENDS}, []),
        ({}, []),
    ],
)
def test_lockout_settings_are_checked(overrides, expected):
    with override_settings(**overrides):
        ids = [m.id for m in run_checks() if m.id in ("rail_django.E030", "rail_django.E031")]
    assert ids == expected
