"""``PermissionDenied`` in any Django view -> ``authz.permission.denied``: function, class-based, admin, async."""

from __future__ import annotations

import pytest
from django.test import AsyncClient

from tests.events.conftest import context_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.events.urls")]


def test_function_view_denial_is_recorded_with_path_method_and_reason(client, rows):
    response = client.get("/denied/function/?q=1", REMOTE_ADDR="203.0.113.40")
    assert response.status_code == 403
    (denied,) = rows("authz.permission.denied")
    assert denied.additional_data["outcome"] == "denied" and denied.success is False
    assert (denied.request_path, denied.request_method, denied.client_ip) == ("/denied/function/", "GET", "203.0.113.40")
    assert denied.error_message == "Only auditors may see this"
    assert context_of(denied) == {"source": "django", "view": "denied-function"}
    assert denied.correlation_id == response["X-Correlation-ID"]
    assert denied.severity == "warning"


def test_class_based_view_denial_names_the_logged_in_user(client, rows, user):
    client.force_login(user)
    assert client.post("/denied/class/").status_code == 403
    (denied,) = rows("authz.permission.denied")
    assert (denied.username, denied.request_method) == ("alice", "POST")
    assert context_of(denied)["view"] == "denied-class"


def test_permission_required_decorator_denial(client, rows, user):
    client.force_login(user)
    assert client.get("/permission-required/").status_code == 403
    assert len(rows("authz.permission.denied")) == 1


def test_admin_denial_for_staff_without_the_permission(client, rows, django_user_model):
    staff = django_user_model.objects.create_user("clerk", password="x", is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/auth/user/add/").status_code == 403
    (denied,) = rows("authz.permission.denied")
    assert denied.username == "clerk" and denied.request_path == "/admin/auth/user/add/"


def test_one_event_per_request_beside_the_views_own(client, rows):
    assert client.get("/denied/emitting/").status_code == 403
    assert [r.event_type for r in rows() if not r.event_type.startswith("auth.account")] == [
        "data.read", "authz.permission.denied",
    ]


def test_allowed_requests_record_nothing(client, rows, user):
    user.is_superuser = True
    user.save()
    client.force_login(user)
    before = len(rows())
    assert client.get("/denied/class/").status_code == 200
    assert client.get("/plain/").status_code == 200
    assert len(rows()) == before


@pytest.mark.asyncio
async def test_async_handler_records_the_denial(rows_async):
    response = await AsyncClient().get("/denied/function/")
    assert response.status_code == 403
    denied = await rows_async("authz.permission.denied")
    assert [(r.request_path, r.correlation_id) for r in denied] == [("/denied/function/", response["X-Correlation-ID"])]


def test_a_flood_is_bounded_per_client_with_one_rate_limit_event(client, rows, settings):
    settings.AUDIT_CLIENT_EVENT_LIMIT = {"events": 3, "window": 60}
    for _ in range(10):
        assert client.get("/denied/function/", REMOTE_ADDR="198.51.100.66").status_code == 403
    client.get("/denied/function/", REMOTE_ADDR="198.51.100.67")  # another client: its own budget
    assert [r.client_ip for r in rows("authz.permission.denied")] == ["198.51.100.66"] * 3 + ["198.51.100.67"]
    (limited,) = rows("rate.limit.exceeded")
    assert context_of(limited) == {"scope": "permission_denied", "limit": 3, "window_seconds": 60,
                                   "client": "ip:198.51.100.66"}
    assert limited.additional_data["outcome"] == "blocked"


def test_master_switch_off_records_no_denial(client, rows, settings):
    settings.GRAPHQL_ENABLE_AUDIT_LOGGING = False
    assert client.get("/denied/function/").status_code == 403
    assert rows() == []
