"""Query counts on the request path: the middleware costs no query, a failed login a pinned few.

Benchmarks measure time; these tests pin the one cost that must never creep
in unnoticed: SQL. ``django_assert_num_queries`` counts the queries of the
request thread's connection (the background writer's inserts are not on it).
"""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import override_settings

from rail_django.alerts import failed_logins as alerts
from rail_django.security import security

pytestmark = pytest.mark.django_db(transaction=True)


def test_anonymous_request_through_the_middleware_issues_no_query(client, django_assert_num_queries, audit_model):
    with django_assert_num_queries(0):
        response = client.get("/plain/")
    assert response.status_code == 200
    assert response["X-Correlation-ID"]  # the middleware did run
    assert audit_model.objects.count() == 0


def test_logged_in_request_that_emits_nothing_loads_neither_session_nor_user(
    client, user, django_assert_num_queries, audit_model
):
    client.force_login(user)
    with django_assert_num_queries(0):
        response = client.get("/plain/")
    assert response.status_code == 200
    assert response["X-Correlation-ID"]


def test_failed_login_issues_the_user_lookup_and_one_insert(client, user, django_assert_num_queries, audit_model):
    # 1. SELECT the user by username (Django's ModelBackend); 2. does that username exist (AUDIT_ATTEMPTED_USERNAME
    # = "known": store it, or its hash); 3. INSERT the audit row (SECURITY_EVENT_ASYNC=False in the test settings).
    # Alert counting uses the cache, not SQL.
    with django_assert_num_queries(3) as captured:
        response = client.post("/login/", {"username": "alice", "password": "wrong-password-123"})
    assert response.status_code == 200
    assert "rail_django_auditeventmodel" in captured.captured_queries[-1]["sql"]
    assert audit_model.objects.filter(event_type="auth.login.failure").count() == 1


@override_settings(SECURITY_EVENT_ASYNC=True)
def test_failed_login_with_background_delivery_issues_only_django_s_own_query(
    client, user, django_assert_num_queries, audit_model
):
    # Django's user lookup and the "known" username check; the row is written by the background writer.
    with django_assert_num_queries(2):
        response = client.post("/login/", {"username": "alice", "password": "wrong-password-123"})
    assert response.status_code == 200
    assert security.flush(timeout=30)
    assert audit_model.objects.filter(event_type="auth.login.failure").count() == 1


@override_settings(SECURITY_EVENT_ASYNC=True)
def test_a_username_tried_again_is_not_looked_up_again(client, user, django_assert_num_queries, audit_model):
    # Issue 16: a brute force repeats its names; the "known" answer is remembered (capture.auth.user_exists).
    client.post("/login/", {"username": "mallory", "password": "wrong-password-123"})
    with django_assert_num_queries(1):  # Django's own user lookup only
        response = client.post("/login/", {"username": "mallory", "password": "wrong-password-456"})
    assert response.status_code == 200
    assert security.flush(timeout=30)
    assert audit_model.objects.filter(event_type="auth.login.failure").count() == 2


def test_repeated_failed_logins_stay_bounded_when_the_alert_fires(
    client, user, settings, django_assert_max_num_queries, audit_model
):
    settings.AUDIT_ALERT_THRESHOLDS = {"failed_logins_per_ip": 3, "failed_logins_per_user": 100,
                                       "suspicious_activity_window": 300}
    cache.clear()
    alerts.counter.reset()
    connection.ensure_connection()  # MySQL's connection set-up queries are not the request's
    for attempt in range(5):
        # The attempt that reaches the threshold also inserts the security.alert row (+1: the "known" username check).
        with django_assert_max_num_queries(4):
            client.post("/login/", {"username": "alice", "password": f"wrong-{attempt}"}, REMOTE_ADDR="203.0.113.77")
    assert audit_model.objects.filter(event_type="auth.login.failure").count() == 5
    assert audit_model.objects.filter(event_type="security.alert").count() == 1
