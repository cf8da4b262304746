"""Django REST framework with TokenAuthentication and SimpleJWT: actors and failures recorded with no code."""

from __future__ import annotations

import pytest
from django.test import AsyncClient
from rest_framework.authtoken.models import Token

from tests.events.conftest import context_of, row_text

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.integrations.urls")]

PASSWORD = "correct-horse-battery"


@pytest.fixture
def token(user):
    return Token.objects.create(user=user)


def _jwt(client) -> str:
    response = client.post("/api/token/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200, response.content
    return response.json()["access"]


def test_token_authenticated_view_events_name_the_token_user(client, rows, token):
    response = client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.json() == {"user": "alice", "event_user": "alice"}
    (read,) = rows("data.read")
    assert (read.user_id, read.username) == (str(token.user.pk), "alice")
    assert read.correlation_id == response["X-Correlation-ID"]
    assert token.key not in row_text(read)


def test_jwt_authenticated_view_events_name_the_jwt_user(client, rows, user):
    access = _jwt(client)
    response = client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {access}")
    assert response.json() == {"user": "alice", "event_user": "alice"}
    (read,) = rows("data.read")
    assert read.username == "alice" and read.user_id == str(user.pk)


def test_invalid_token_is_auth_token_invalid_without_the_token(client, rows, token):
    response = client.get("/api/whoami/", HTTP_AUTHORIZATION="Token not-a-real-token-123", REMOTE_ADDR="203.0.113.80")
    assert response.status_code == 401
    (invalid,) = rows("auth.token.invalid")
    assert context_of(invalid) == {"source": "rest_framework", "code": "authentication_failed", "status_code": 401,
                                   "view": "whoami", "scheme": "Token"}
    assert invalid.additional_data["outcome"] == "denied" and invalid.client_ip == "203.0.113.80"
    assert invalid.user_id is None and invalid.severity == "warning"
    assert "not-a-real-token-123" not in row_text(invalid)
    assert not rows("authz.permission.denied")


def test_expired_or_forged_jwt_is_auth_token_invalid(client, rows, user):
    access = _jwt(client)
    forged = access[:-4] + ("AAAA" if not access.endswith("AAAA") else "BBBB")
    assert client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {forged}").status_code == 401
    (invalid,) = rows("auth.token.invalid")
    assert context_of(invalid)["code"] == "token_not_valid" and context_of(invalid)["scheme"] == "Bearer"
    assert forged not in row_text(invalid)


def test_missing_credentials_are_a_permission_denial(client, rows):
    assert client.get("/api/whoami/").status_code == 401
    (denied,) = rows("authz.permission.denied")
    assert context_of(denied)["code"] == "not_authenticated" and denied.additional_data["outcome"] == "denied"
    assert not rows("auth.token.invalid")


def test_an_authenticated_user_without_the_permission_is_denied(client, rows, token):
    assert client.get("/api/admins/", HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 403
    (denied,) = rows("authz.permission.denied")
    assert denied.username == "alice" and context_of(denied)["code"] == "permission_denied"
    assert context_of(denied)["view"] == "admins-only"


def test_throttling_is_rate_limit_exceeded(client, rows):
    statuses = [client.get("/api/throttled/", REMOTE_ADDR="198.51.100.30").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    (limited,) = rows("rate.limit.exceeded")
    assert context_of(limited)["code"] == "throttled" and int(context_of(limited)["retry_after"]) > 0
    assert limited.additional_data["outcome"] == "blocked"


def test_a_failed_jwt_login_is_recorded_once_as_a_login_failure(client, rows, user):
    assert client.post("/api/token/", {"username": "alice", "password": "wrong"}).status_code == 401
    assert [r.event_type for r in rows() if not r.event_type.startswith("auth.account")] == ["auth.login.failure"]


def test_bad_tokens_in_a_loop_are_bounded(client, rows, settings):
    settings.AUDIT_CLIENT_EVENT_LIMIT = {"events": 3, "window": 60}
    for number in range(12):
        client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Token bad-{number}", REMOTE_ADDR="198.51.100.31")
    assert len(rows("auth.token.invalid")) == 3
    (limited,) = rows("rate.limit.exceeded")
    assert context_of(limited)["scope"] == "drf:auth.token.invalid"


@pytest.mark.asyncio
async def test_under_asgi_the_failure_is_recorded_too(rows_async):
    response = await AsyncClient().get("/api/whoami/", headers={"Authorization": "Token nope"})
    assert response.status_code == 401
    (invalid,) = await rows_async("auth.token.invalid")
    assert invalid.correlation_id == response["X-Correlation-ID"]
