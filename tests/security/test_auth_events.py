"""The three automatic auth events, through the real LoginView and LogoutView."""

import json

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db(transaction=True)

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def _rows(model, event_type):
    return list(model.objects.filter(event_type=event_type).order_by("id"))


def test_failed_login_records_attempted_username_and_request_facts(client, user, audit_model, audit_log_file):
    response = client.post(
        "/login/",
        {"username": "alice", "password": "wrong-password-123"},
        HTTP_USER_AGENT=BROWSER,
        REMOTE_ADDR="203.0.113.9",
    )
    assert response.status_code == 200  # the form re-renders with an error

    [row] = _rows(audit_model, "auth.login.failure")
    assert row.success is False
    assert row.severity == "warning"
    assert row.client_ip == "203.0.113.9"
    assert row.user_agent == BROWSER
    assert row.request_path == "/login/"
    assert row.request_method == "POST"
    assert row.user_id is None
    assert row.additional_data["context"]["username_attempted"] == "alice"
    assert row.additional_data["outcome"] == "failure"
    assert row.correlation_id == response["X-Correlation-ID"]


def test_password_never_reaches_database_or_file(client, user, audit_model, audit_log_file):
    client.post("/login/", {"username": "alice", "password": "wrong-password-123"})
    client.post("/login/", {"username": "alice", "password": "correct-horse-battery"})

    stored = json.dumps([
        {f.name: str(getattr(r, f.name)) for f in audit_model._meta.fields} for r in audit_model.objects.all()
    ])
    assert audit_model.objects.count() == 2
    assert "wrong-password-123" not in stored
    assert "correct-horse-battery" not in stored
    text = audit_log_file.read_text()
    assert text.count("\n") == 2
    assert "wrong-password-123" not in text and "correct-horse-battery" not in text


def test_successful_login_and_logout_record_the_user(client, user, audit_model, audit_log_file):
    client.post("/login/", {"username": "alice", "password": "correct-horse-battery"}, REMOTE_ADDR="198.51.100.4")
    client.post("/logout/", REMOTE_ADDR="198.51.100.4")

    [login] = _rows(audit_model, "auth.login.success")
    [logout] = _rows(audit_model, "auth.logout")
    for row in (login, logout):
        assert row.user_id == str(user.pk)
        assert row.username == "alice"
        assert row.success is True
        assert row.client_ip == "198.51.100.4"
    assert login.request_path == "/login/" and logout.request_path == "/logout/"
    # The session key is a secret: only a digest is kept, and it groups events.
    assert login.session_id and client.session.session_key not in (login.session_id, logout.session_id)

    lines = [json.loads(line) for line in audit_log_file.read_text().splitlines()]
    assert [line["event_type"] for line in lines] == ["auth.login.success", "auth.logout"]
    assert lines[0]["username"] == "alice"


_AUTH_FIRST = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "rail_django.security.middleware.context.SecurityContextMiddleware",
]
_CONTEXT_FIRST = [
    "rail_django.security.middleware.context.SecurityContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]


@pytest.mark.parametrize("middleware", [_AUTH_FIRST, _CONTEXT_FIRST], ids=["after-auth", "before-auth"])
def test_actor_is_right_wherever_the_middleware_sits(client, user, audit_model, middleware):
    with override_settings(MIDDLEWARE=middleware):
        client.force_login(user)
        response = client.get("/emit/")
    row = audit_model.objects.get(event_type="data.read")
    assert row.user_id == str(user.pk)
    assert row.username == "alice"
    assert row.request_path == "/emit/"
    assert row.correlation_id == response["X-Correlation-ID"]
