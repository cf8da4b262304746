"""Lockout rules that match django-axes, through the real LoginView, the admin login, SimpleJWT and the command."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings

from tests.events.conftest import context_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.events.lockout_urls")]

PASSWORD = "correct-horse-battery"
BACKENDS = ["rail_django.security.backends.LockoutBackend", "django.contrib.auth.backends.ModelBackend"]
MIDDLEWARE_PATH = "rail_django.alerts.lockout.LockoutMiddleware"


@pytest.fixture(autouse=True)
def lockout_on(settings):
    settings.AUDIT_LOCKOUT_ENABLED = True
    settings.AUTHENTICATION_BACKENDS = BACKENDS
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, MIDDLEWARE_PATH]
    settings.AUDIT_LOCKOUT_FAILURE_LIMIT = 3
    settings.AUDIT_LOCKOUT_COOLOFF = [60, 600]
    return settings


def _login(client, username="alice", password="wrong-password", ip="203.0.113.9", **extra):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip, **extra)


def _fail(client, times, **kwargs):
    return [_login(client, **kwargs).status_code for _ in range(times)]


def test_the_default_pair_locks_that_username_from_that_address_with_429(client, rows, user):
    assert _fail(client, 3) == [200, 200, 429]  # the failure that locks is answered with 429 too
    refused = _login(client, password=PASSWORD)
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 60
    assert "_auth_user_id" not in client.session
    (locked,) = rows("auth.login.locked")
    assert context_of(locked)["lockout_rule"] == "username+ip_address"
    assert context_of(locked)["subject"] == {"username": "alice", "ip_address": "203.0.113.9"}
    assert (context_of(locked)["tier"], context_of(locked)["cooloff_seconds"], locked.severity) == (1, 60, "error")
    blocked = [r for r in rows("auth.login.failure") if r.additional_data["outcome"] == "blocked"]
    assert [context_of(r)["lockout_rule"] for r in blocked] == ["username+ip_address"]
    assert len(rows("auth.login.failure")) == 4  # three counted failures, one blocked attempt (not counted)


def test_the_pair_rule_does_not_let_an_attacker_lock_the_victim_out(client, user):
    _fail(client, 5, ip="198.51.100.66")  # the attacker's address
    assert _login(client, password=PASSWORD, ip="203.0.113.10").status_code == 302  # the victim, elsewhere


def test_ip_rule_locks_every_username_from_that_address(client, settings, user):
    settings.AUDIT_LOCKOUT_PARAMETERS = ["ip_address"]
    for name in ("mallory1", "mallory2", "mallory3"):
        _login(client, username=name, ip="203.0.113.66")
    assert _login(client, password=PASSWORD, ip="203.0.113.66").status_code == 429
    assert _login(client, password=PASSWORD, ip="198.51.100.7").status_code == 302


def test_username_rule_and_combinations_side_by_side(client, settings, user):
    settings.AUDIT_LOCKOUT_PARAMETERS = ["username", ["ip_address", "user_agent"]]
    for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        _login(client, ip=ip)
    assert _login(client, password=PASSWORD, ip="198.51.100.9").status_code == 429  # username alone


def test_usernames_are_normalised_before_counting(client, rows, user):
    for typed in ("Alice", " alice ", "ＡＬＩＣＥ"):  # case, surrounding spaces, full-width (NFKC)
        _login(client, username=typed)
    (locked,) = rows("auth.login.locked")
    assert context_of(locked)["subject"]["username"] == "alice"


def test_cool_off_ends_and_the_next_lockout_is_longer(client, rows, user):
    with time_machine.travel(datetime(2030, 1, 1, tzinfo=timezone.utc), tick=False) as clock:
        _fail(client, 3)
        assert _login(client, password=PASSWORD).status_code == 429
        clock.shift(timedelta(seconds=61))
        assert _fail(client, 3) == [200, 200, 429]  # counting started again after the first cool-off
        second = _login(client, password=PASSWORD)
        assert second.status_code == 429 and int(second["Retry-After"]) == 600  # tier 2
        clock.shift(timedelta(seconds=601))
        assert _login(client, password=PASSWORD).status_code == 302
    assert [context_of(r)["tier"] for r in rows("auth.login.locked")] == [1, 2]


def test_allow_and_deny_lists(client, settings, user):
    settings.AUDIT_LOCKOUT_ALLOW_IPS = ["10.0.0.0/8"]
    settings.AUDIT_LOCKOUT_DENY_IPS = ["192.0.2.66"]
    settings.AUDIT_LOCKOUT_ALLOW_USERNAMES = ["Service"]
    assert _fail(client, 5, ip="10.1.2.3") == [200] * 5  # never locked
    assert _fail(client, 5, username="service") == [200] * 5
    denied = _login(client, password=PASSWORD, ip="192.0.2.66")
    assert denied.status_code == 403 and not denied.has_header("Retry-After")


def test_admin_login_is_refused_with_429(client, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "root-password-1")
    for _ in range(3):
        client.post("/admin/login/", {"username": "root", "password": "nope"}, REMOTE_ADDR="203.0.113.9")
    refused = client.post("/admin/login/", {"username": "root", "password": "root-password-1"}, REMOTE_ADDR="203.0.113.9")
    assert refused.status_code == 429 and refused.has_header("Retry-After")


def test_simplejwt_token_view_is_refused_with_429_json(client, user):
    for _ in range(3):
        client.post("/api/token/", {"username": "alice", "password": "nope"}, REMOTE_ADDR="203.0.113.9")
    refused = client.post("/api/token/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="203.0.113.9",
                          HTTP_ACCEPT="application/json")
    assert refused.status_code == 429
    assert refused.json()["retry_after"] == int(refused["Retry-After"]) and "access" not in refused.json()


def test_reset_on_success_forgets_the_failures(client, settings, user):
    settings.AUDIT_LOCKOUT_RESET_ON_SUCCESS = True
    _fail(client, 2)
    assert _login(client, password=PASSWORD).status_code == 302
    Client().post("/logout/")
    assert _fail(client, 2) == [200, 200]  # 2, not 4: the success reset the count


def test_without_the_middleware_the_login_is_still_refused(client, settings, user):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE_PATH]
    _fail(client, 3)
    refused = _login(client, password=PASSWORD)
    assert refused.status_code == 200 and "_auth_user_id" not in client.session


def test_lockout_template_is_rendered(client, settings, user, tmp_path):
    (tmp_path / "locked.html").write_text("Locked: retry in {{ retry_after }}s ({{ lockout_rule }})")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}]
    settings.AUDIT_LOCKOUT_TEMPLATE = "locked.html"
    _fail(client, 3)
    refused = _login(client, password=PASSWORD)
    assert refused.status_code == 429 and refused.content.decode().startswith("Locked: retry in ")
    assert "(username+ip_address)" in refused.content.decode()


# -- status, reset, admin action --------------------------------------------------------------------


def _command(*args) -> str:
    out = io.StringIO()
    call_command("audit_management", "lockout", *args, stdout=out)
    return out.getvalue()


def test_command_status_and_reset_are_recorded(client, rows, user):
    _fail(client, 3)
    _fail(client, 3, username="bob", ip="198.51.100.5")
    status = _command("status")
    assert "2 lockout(s) in force." in status and "username=alice ip_address=203.0.113.9" in status
    assert "username=alice" in _command("status", "--username", "ALICE") and "1 lockout(s)" in _command(
        "status", "--ip", "198.51.100.5")

    out = _command("reset", "--ip", "203.0.113.9", "--username", "Alice")
    assert "Reset 1 lockout(s)" in out
    assert _login(client, password=PASSWORD).status_code == 302
    (unlocked,) = rows("auth.login.unlocked")
    assert context_of(unlocked)["subject"] == {"username": "alice", "ip_address": "203.0.113.9"}
    assert context_of(unlocked)["reset_via"] == "audit_management lockout reset"
    assert "1 lockout(s) in force." in _command("status")  # bob's is still there


def test_command_rejects_bad_input_and_changes_nothing(client, user):
    _fail(client, 3)
    with pytest.raises(CommandError, match="Give an IP address, a username, or both"):
        _command("reset")
    with pytest.raises(CommandError, match="is not an IP address"):
        _command("reset", "--ip", "not-an-ip")
    assert "1 lockout(s) in force." in _command("status")


def test_admin_action_lifts_the_lockout_of_selected_events(client, rows, user, django_user_model):
    _fail(client, 3)
    root = django_user_model.objects.create_superuser("root", "root@example.com", "root-password-1")
    admin = Client()
    admin.force_login(root, backend="django.contrib.auth.backends.ModelBackend")  # not the first: LockoutBackend
    (locked,) = rows("auth.login.locked")
    response = admin.post("/admin/rail_django/auditeventmodel/", {
        "action": "reset_lockouts", "_selected_action": [locked.pk],
    }, follow=True)
    assert "Lifted 1 lockout(s)." in response.content.decode()
    (unlocked,) = rows("auth.login.unlocked")
    assert (unlocked.username, context_of(unlocked)["reset_via"]) == ("root", "admin")
    assert _login(client, password=PASSWORD).status_code == 302


def test_admin_action_is_hidden_without_lockout(settings, django_user_model):
    settings.AUDIT_LOCKOUT_ENABLED = False
    root = django_user_model.objects.create_superuser("root", "root@example.com", "root-password-1")
    admin = Client()
    admin.force_login(root, backend="django.contrib.auth.backends.ModelBackend")
    assert 'name="action"' not in admin.get("/admin/rail_django/auditeventmodel/").content.decode()


# -- checks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"AUDIT_LOCKOUT_PARAMETERS": [["username", "password"]]}, "rail_django.E062"),
        ({"AUDIT_LOCKOUT_PARAMETERS": []}, "rail_django.E062"),
        ({"AUDIT_LOCKOUT_FAILURE_LIMIT": 0}, "rail_django.E063"),
        ({"AUDIT_LOCKOUT_COOLOFF": [60, "1h"]}, "rail_django.E064"),
        ({"AUDIT_LOCKOUT_ALLOW_IPS": ["10.0.0.0/33"]}, "rail_django.E065"),
        ({"AUDIT_LOCKOUT_DENY_USERNAMES": "root"}, "rail_django.E066"),
        ({"AUDIT_LOCKOUT_RESET_ON_SUCCESS": "yes"}, "rail_django.E067"),
        ({"AUDIT_LOCKOUT_TEMPLATE": 3}, "rail_django.E068"),
        ({"AUDIT_ACCOUNT_EVENTS": "on"}, "rail_django.E080"),
        ({"AUDIT_CLIENT_EVENT_LIMIT": {"events": 0, "window": 60}}, "rail_django.E081"),
    ],
)
def test_bad_settings_fail_the_checks(overrides, expected):
    with override_settings(**overrides):
        ids = [m.id for m in run_checks() if m.id.startswith(("rail_django.E06", "rail_django.E08"))]
    assert ids == [expected]


def test_the_defaults_pass_and_a_missing_middleware_is_a_warning(settings):
    assert [m.id for m in run_checks() if m.id.startswith("rail_django.") and m.id[12:14] in ("E0", "W0")
            and m.id[13:15] == "06"] == []
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE_PATH]
    assert "rail_django.W060" in [m.id for m in run_checks()]
