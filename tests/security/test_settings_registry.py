"""One settings registry: defaults, typed config, checks and docs all come from it; bad values never crash start-up."""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.core.signals import setting_changed
from django.test import override_settings

from rail_django.conf import DEFAULTS, REGISTRY, SecurityConfig, get_config, reset_config
from rail_django.conf import docs as settings_docs
from rail_django.conf.registry import LOCKOUT_BACKEND_PATH, SECTIONS

ROOT = Path(__file__).resolve().parents[2]

#: A realistic bad value for every registered setting (the test below fails when one is missing).
BAD_VALUES = {
    "AUDIT_TRACKED_MODELS": ["orders.Order"],
    "AUDIT_PARTITIONING": {"interval": "hour", "premake": 4},
    "AUDIT_ACCOUNT_EVENTS": "on",
    "AUDIT_CLIENT_EVENT_LIMIT": {"events": 0, "window": 60},
    "AUDIT_LOCKOUT_PARAMETERS": [["username", "shoe_size"]],
    "AUDIT_LOCKOUT_FAILURE_LIMIT": 0,
    "AUDIT_LOCKOUT_FAILURE_WINDOW": -1,
    "AUDIT_LOCKOUT_COOLOFF": [],
    "AUDIT_LOCKOUT_TIER_MEMORY": "a day",
    "AUDIT_LOCKOUT_ALLOW_IPS": ["not-an-ip"],
    "AUDIT_LOCKOUT_DENY_IPS": ["300.1.1.1"],
    "AUDIT_LOCKOUT_ALLOW_USERNAMES": "alice",
    "AUDIT_LOCKOUT_DENY_USERNAMES": [1],
    "AUDIT_LOCKOUT_RESET_ON_SUCCESS": "yes",
    "AUDIT_LOCKOUT_TEMPLATE": 42,
    "GRAPHQL_ENABLE_AUDIT_LOGGING": "yes",
    "SECURITY_EVENT_ASYNC": "false",
    "AUDIT_CAPTURE_CLIENT_IP": "no",
    "AUDIT_CAPTURE_USER_AGENT": 0,
    "AUDIT_EVENT_MODEL": "nope.Missing",
    "AUDIT_ADMIN_ENABLED": "yes",
    "AUDIT_STORE_IN_DATABASE": 1,
    "AUDIT_DATABASE_ALIAS": "other",
    "AUDIT_STORE_IN_FILE": None,
    "AUDIT_LOG_FILE": 42,
    "AUDIT_LOG_FILE_MAX_BYTES": -1,
    "AUDIT_LOG_FILE_BACKUP_COUNT": "five",
    "AUDIT_WEBHOOK_URL": "ftp://example.org/x",
    "AUDIT_WEBHOOK_MIN_SEVERITY": "loud",
    "AUDIT_WEBHOOK_SECRET": "whsec_***not base64***",
    "AUDIT_WEBHOOK_TIMEOUT": 0,
    "AUDIT_WEBHOOK_MAX_RETRIES": 99,
    "AUDIT_WEBHOOK_BACKOFF": "fast",
    "AUDIT_QUEUE_SIZE": 0,
    "AUDIT_BATCH_SIZE": None,
    "AUDIT_DELIVERY": "process",
    "AUDIT_STREAM": {"backend": "kafka", "servers": ["nats://127.0.0.1:4222"]},
    "AUDIT_JOURNAL_DIR": 3,
    "AUDIT_JOURNAL_SEGMENT_BYTES": 10,
    "AUDIT_INTEGRITY_KEY": "short",
    "AUDIT_INTEGRITY_SIGNING_KEY": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----",
    "AUDIT_INTEGRITY_CHECKPOINT_SECONDS": -60,
    "AUDIT_REDACTION_FIELDS": "password",
    "AUDIT_REDACTION_MASK": "",
    "RAIL_DJANGO_TRUSTED_PROXIES": ["10.0.0.0/33"],
    "RAIL_DJANGO_ACCEPT_REQUEST_ID_FROM": "everyone",
    "AUDIT_RETENTION_DAYS": "ninety",
    "AUDIT_ALERT_THRESHOLDS": {"failed_logins_per_ip": 0},
    "AUDIT_CACHE_ALIAS": "missing",
    "AUDIT_LOCKOUT_ENABLED": "yes",
    "AUDIT_ATTEMPTED_USERNAME": "sometimes",
    "RAIL_DJANGO_GRAPHQL": "yes",
}


class _Unforeseen:
    """A value no validator was written for."""

    def __repr__(self) -> str:
        return "<unforeseen>"


def _check_fails_with(name: str, value: object) -> str:
    """Run ``manage.py check`` with ``name = value``; return the report (it must be a SystemCheckError)."""
    with override_settings(**{name: value}):
        with pytest.raises(SystemCheckError) as raised:
            call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    return str(raised.value)


def test_every_registered_setting_has_a_bad_value_here():
    assert set(BAD_VALUES) == set(REGISTRY)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_bad_value_of_every_setting_fails_check_with_its_id(name):
    report = _check_fails_with(name, BAD_VALUES[name])
    assert REGISTRY[name].check_id in report
    assert name in report


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_an_unforeseen_value_of_every_setting_fails_check_and_nothing_else(name):
    report = _check_fails_with(name, _Unforeseen())
    assert re.search(rf"{re.escape(REGISTRY[name].check_id)}\b.*{name}", report), report


@pytest.mark.parametrize("name", sorted(n for n, s in REGISTRY.items() if s.attribute))
def test_a_bad_value_falls_back_to_the_default_for_that_setting_only(name, caplog):
    setting = REGISTRY[name]
    # One other setting with a non-default value, to see that it is still used.
    other, other_value, attribute = (
        ("AUDIT_RETENTION_DAYS", 400, "retention_days") if name == "AUDIT_REDACTION_MASK"
        else ("AUDIT_REDACTION_MASK", "[gone]", "redaction_mask")
    )
    with override_settings(**{name: BAD_VALUES[name], other: other_value}):
        with caplog.at_level(logging.WARNING, logger="rail_django.conf"):
            config = get_config()
    assert getattr(config, setting.attribute) == setting.convert(setting.default_value())
    assert getattr(config, attribute) == other_value
    [record] = [r for r in caplog.records if r.getMessage().startswith(name)]
    assert setting.check_id in record.getMessage() and "default" in record.getMessage()


def test_security_config_has_exactly_the_registered_attributes():
    fields = {f.name for f in dataclasses.fields(SecurityConfig)}
    assert fields == {s.attribute for s in REGISTRY.values() if s.attribute}


def test_every_attribute_the_code_reads_exists():
    used_before_the_registry = {
        "enabled", "store_in_database", "store_in_file", "log_file", "log_file_max_bytes", "log_file_backup_count",
        "webhook_url", "webhook_secret", "webhook_min_severity", "webhook_timeout", "webhook_max_retries",
        "webhook_backoff", "retention_days", "alert_thresholds", "cache_alias", "redaction_fields", "redaction_mask",
        "event_model", "database_alias", "capture_client_ip", "capture_user_agent", "queue_size", "batch_size",
        "trusted_proxies", "async_delivery", "journal_dir", "journal_segment_bytes",
    }
    sources = "".join(p.read_text() for p in (ROOT / "rail_django").rglob("*.py"))
    read = set(re.findall(r"get_config\(\)\.(\w+)", sources))
    fields = {f.name for f in dataclasses.fields(SecurityConfig)}
    assert read and read <= fields
    assert used_before_the_registry <= fields
    assert {"integrity_signing_key", "integrity_checkpoint_seconds", "attempted_username"} <= fields


def test_defaults_come_from_the_registry(settings):
    assert set(DEFAULTS) == set(REGISTRY)
    config = get_config()
    for name, setting in REGISTRY.items():
        if setting.attribute and not hasattr(settings, name):  # what tests/settings.py leaves to the defaults
            assert getattr(config, setting.attribute) == setting.convert(setting.default_value()), name
    assert (config.attempted_username, config.accept_request_id_from) == ("known", "trusted_proxies")
    assert config.integrity_checkpoint_seconds == 60 and config.integrity_signing_key is None


def test_secrets_are_not_in_the_config_repr_nor_in_check_messages():
    secret = "whsec_" + "c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw=="
    with override_settings(AUDIT_WEBHOOK_SECRET=secret, AUDIT_INTEGRITY_KEY="k" * 8 + "hidden-key-text"):
        assert "c2VjcmV0" not in repr(get_config()) and "hidden-key-text" not in repr(get_config())
    with override_settings(AUDIT_INTEGRITY_KEY="zzshortzz", AUDIT_WEBHOOK_SECRET="whsec_!!zzbadzz"):
        messages = " ".join(m.msg for m in run_checks())
    assert "rail_django.E052" not in messages  # (ids are not in msg) the messages name the settings, not the values
    assert "AUDIT_INTEGRITY_KEY" in messages and "AUDIT_WEBHOOK_SECRET" in messages
    assert "zzshortzz" not in messages and "zzbadzz" not in messages


def test_the_lockout_backend_path_is_the_backends_own():
    from rail_django.alerts.lockout import BACKEND_PATH

    assert LOCKOUT_BACKEND_PATH == BACKEND_PATH


# -- misspelt names ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("AUDIT_RETENTON_DAYS", "AUDIT_RETENTION_DAYS"), ("AUDIT_STORE_IN_FILES", "AUDIT_STORE_IN_FILE"),
     ("AUDIT_WEBHOK_URL", "AUDIT_WEBHOOK_URL"), ("SECURITY_EVENTS_ASYNC", "SECURITY_EVENT_ASYNC"),
     ("RAIL_DJANGO_TRUSTED_PROXY", "RAIL_DJANGO_TRUSTED_PROXIES")],
)
def test_a_name_close_to_a_setting_warns_did_you_mean(typo, meant):
    with override_settings(**{typo: 30}):
        warnings = [m for m in run_checks() if m.id == "rail_django.W001"]
        out = io.StringIO()
        call_command("check", stdout=out, stderr=out)  # a warning: check still passes
    [warning] = warnings
    assert warning.msg == f"{typo} is not a rail-django setting; did you mean {meant}?"
    assert "rail_django.W001" in out.getvalue()


def test_a_projects_own_names_with_the_prefixes_do_not_warn():
    own = {"AUDIT_PROXY_PORT": 5433, "AUDIT_LOG_LEVEL": "INFO", "SECURITY_TEAM_EMAIL": "sec@example.org",
           "RAIL_DJANGO_FEATURE_FLAGS": {}, "AUDITOR_NAME": "x"}
    with override_settings(**own):
        assert [m for m in run_checks() if m.id == "rail_django.W001"] == []


# -- start-up with a bad value, in a fresh process --------------------------------------------------------------------


def _run_with(tmp_path: Path, extra: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "bad_settings.py").write_text("from tests.settings import *  # noqa\n" + textwrap.dedent(extra))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "RAIL_DJANGO_TEST_DB": "sqlite",
           "RAIL_DJANGO_TEST_OUTPUT": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "django", *args, "--settings", "bad_settings"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.mark.slow
@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("extra", "check_id"),
    [('AUDIT_RETENTION_DAYS = "ninety"', "rail_django.E008"), ("AUDIT_RETENTION_DAYS = None", "rail_django.E008"),
     ('AUDIT_EVENT_MODEL = "nope.Missing"', "rail_django.E014"), ("AUDIT_QUEUE_SIZE = 'big'", "rail_django.E015")],
)
def test_django_setup_and_check_survive_a_bad_value_with_the_admin_installed(tmp_path, extra, check_id):
    result = _run_with(tmp_path, extra, "check")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert check_id in result.stderr and "SystemCheckError" in result.stderr


@pytest.mark.slow
@pytest.mark.sqlite_only
def test_security_check_reports_a_bad_value_instead_of_dying(tmp_path):
    result = _run_with(tmp_path, 'AUDIT_RETENTION_DAYS = "ninety"\n', "security_check", "--format", "json")
    assert "Traceback" not in result.stderr, result.stderr
    assert '"rail_django.E008"' in result.stdout and result.returncode == 1


@pytest.mark.slow
@pytest.mark.sqlite_only
def test_importing_the_settings_module_connects_no_signal():
    code = ("import django.core.signals as s; import rail_django.conf, rail_django.checks; "
            "print(s.setting_changed.disconnect(dispatch_uid='rail_django.conf.setting_changed'))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr  # nothing to disconnect: ready() connects it


def test_ready_connects_the_setting_changed_receiver(settings):
    assert setting_changed.disconnect(dispatch_uid="rail_django.conf.setting_changed")
    try:
        get_config()  # cached
        settings.AUDIT_RETENTION_DAYS = 400
        assert get_config().retention_days != 400  # nothing drops the cache without the receiver
    finally:
        from rail_django.conf import on_setting_changed

        setting_changed.connect(on_setting_changed, dispatch_uid="rail_django.conf.setting_changed")
        reset_config()
    settings.AUDIT_RETENTION_DAYS = 401
    assert get_config().retention_days == 401


# -- docs -------------------------------------------------------------------------------------------------------------


def test_the_docs_tables_are_the_registry():
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert settings_docs.render(text) == text, "run: python -m rail_django.conf.docs docs/configuration.md"
    for name, setting in REGISTRY.items():
        if setting.section in SECTIONS:
            assert settings_docs.row(setting) in text, name


def test_the_docs_command_finds_and_fixes_a_drifted_table(tmp_path):
    page = tmp_path / "configuration.md"
    original = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    page.write_text(original.replace("| `90` |", "| `30` |"), encoding="utf-8")
    assert settings_docs.main([str(page), "--check"]) == 1
    assert settings_docs.main([str(page)]) == 0
    assert page.read_text(encoding="utf-8") == original
    assert settings_docs.main([str(page), "--check"]) == 0


# -- the middleware without the app -----------------------------------------------------------------------------------


def test_the_middleware_without_the_app_refuses_to_start(settings):
    from django.core.exceptions import ImproperlyConfigured

    from rail_django.security.middleware.context import SecurityContextMiddleware

    without_app = [app for app in settings.INSTALLED_APPS if app != "rail_django"]
    with override_settings(INSTALLED_APPS=without_app):
        with pytest.raises(ImproperlyConfigured, match=r"rail_django\.E061.*INSTALLED_APPS"):
            SecurityContextMiddleware(lambda request: None)
    SecurityContextMiddleware(lambda request: None)  # installed again: fine


@pytest.mark.slow
@pytest.mark.sqlite_only
def test_a_wsgi_server_with_the_middleware_but_not_the_app_fails_at_start_up(tmp_path):
    code = "from django.core.wsgi import get_wsgi_application; get_wsgi_application()"
    (tmp_path / "no_app_settings.py").write_text(
        "from tests.settings import *  # noqa\n"
        "INSTALLED_APPS = [a for a in INSTALLED_APPS if a not in ('rail_django', 'tests.testapp')]\n"
        "ROOT_URLCONF = 'no_app_urls'\nGRAPHENE = {}\n"
    )
    (tmp_path / "no_app_urls.py").write_text("urlpatterns = []\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "DJANGO_SETTINGS_MODULE": "no_app_settings",
           "RAIL_DJANGO_TEST_OUTPUT": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "ImproperlyConfigured: rail_django.E061" in result.stderr, result.stderr[-2000:]
