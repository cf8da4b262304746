"""``manage.py security_check``: findings, exit codes and output, on a bad and a good deployment."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.conftest import require_server

ROOT = Path(__file__).resolve().parents[2]


def _run(settings_module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "django", *args, "--settings", settings_module],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env}, capture_output=True, text=True, timeout=180,
    )


def _by_id(document):
    found: dict[str, str] = {}
    for finding in document["findings"]:
        assert set(finding) == {"id", "severity", "message", "hint"}
        assert "\n" not in finding["message"]
        found.setdefault(finding["id"], finding["severity"])
    return found


@pytest.mark.slow
@pytest.mark.sqlite_only
def test_a_bad_deployment_fails_with_its_findings(tmp_path):
    result = _run("tests.commands.settings_bad", "security_check", "--format", "json",
                  env={"RAIL_CHECK_DB": str(tmp_path / "db.sqlite3")})
    assert result.returncode == 1
    *logged, error = result.stderr.strip().splitlines()
    assert error == "CommandError: security_check found 5 critical problem(s)"
    # The bad AUDIT_LOCKOUT_ENABLED did not stop start-up: it is reported and its default used meanwhile.
    assert logged == ["AUDIT_LOCKOUT_ENABLED is invalid (rail_django.E030: it must be True or False); "
                      "using its default until it is fixed (see manage.py check)."]
    document = json.loads(result.stdout)
    assert document["status"] == "fail"
    found = _by_id(document)
    assert {k for k, v in found.items() if v == "critical"} == {
        "django.debug", "django.secret_key", "audit.database", "audit.file", "rail_django.E030",
    }
    for warning in ("audit.alerts.cache", "audit.alerts.thresholds", "audit.proxies", "audit.retention",
                    "audit.webhook.https", "audit.webhook.signed", "graphql.graphiql", "graphql.introspection",
                    "security.W001", "audit.integrity"):
        assert found[warning] == "warning", warning
    assert document["counts"]["critical"] == 5
    assert sum(document["counts"].values()) == len(document["findings"])
    # the ids this command reports itself are not repeated from check --deploy
    assert "security.W018" not in found and "security.W009" not in found


@pytest.mark.slow
@pytest.mark.sqlite_only
def test_a_good_deployment_passes_with_every_check_ok(tmp_path):
    require_server("redis", "127.0.0.1", 6379)
    env = {"RAIL_CHECK_DB": str(tmp_path / "db.sqlite3"), "RAIL_CHECK_LOG_DIR": str(tmp_path / "logs")}
    migrate = _run("tests.commands.settings_good", "migrate", "-v0", env=env)
    assert migrate.returncode == 0, migrate.stderr

    result = _run("tests.commands.settings_good", "security_check", "--verbose", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "PASS: 0 critical, 0 warning, 0 info, 13 ok"
    for check in ("django.check_deploy", "django.debug", "django.secret_key", "graphql.endpoints", "audit.enabled",
                  "audit.database", "audit.file", "audit.webhook", "audit.retention", "audit.alerts.thresholds",
                  "audit.alerts.cache", "audit.proxies", "audit.integrity"):
        assert any(line.startswith("OK") and f" {check}: " in line for line in lines), check

    as_json = json.loads(_run("tests.commands.settings_good", "security_check", "--format", "json", env=env).stdout)
    assert as_json["status"] == "pass"
    assert as_json["counts"] == {"ok": 13, "info": 0, "warning": 0, "critical": 0}


# -- in process, one check at a time -------------------------------------------------------


def check(*args: str) -> tuple[dict, str]:
    """``(json document, text output)``; a critical finding's CommandError is swallowed here."""
    out, text = io.StringIO(), io.StringIO()
    for stream, extra in ((out, ["--format", "json"]), (text, ["--verbose"])):
        try:
            call_command("security_check", *extra, *args, stdout=stream)
        except CommandError as exc:
            assert exc.returncode == 1
    return json.loads(out.getvalue()), text.getvalue()


def _severity(document, finding_id):
    return _by_id(document)[finding_id]


@pytest.mark.django_db(transaction=True)
def test_exit_code_is_1_only_when_something_is_critical(settings):
    document, _ = check()
    assert document["counts"]["critical"] == 0, document  # the test settings have warnings only
    call_command("security_check", stdout=io.StringIO())  # no exception: exit 0
    settings.DEBUG = True
    with pytest.raises(CommandError, match="critical") as caught:
        call_command("security_check", stdout=io.StringIO())
    assert caught.value.returncode == 1


@pytest.mark.django_db(transaction=True)
def test_text_output_hides_passing_checks_unless_verbose(settings):
    settings.DEBUG = True
    quiet = io.StringIO()
    with pytest.raises(CommandError):
        call_command("security_check", stdout=quiet)
    _, verbose = check()
    assert "CRITICAL django.debug: DEBUG is True" in quiet.getvalue()
    assert "fix: Set DEBUG = False" in quiet.getvalue()
    assert "OK       audit.database:" in verbose and "OK       audit.database:" not in quiet.getvalue()
    assert quiet.getvalue().strip().splitlines()[-1].startswith("FAIL: ")


@pytest.mark.django_db(transaction=True)
def test_audit_switched_off_or_without_sinks_is_critical(settings):
    settings.GRAPHQL_ENABLE_AUDIT_LOGGING = False
    assert _severity(check()[0], "audit.enabled") == "critical"
    settings.GRAPHQL_ENABLE_AUDIT_LOGGING = True
    settings.AUDIT_STORE_IN_DATABASE = False
    settings.AUDIT_STORE_IN_FILE = False
    assert _severity(check()[0], "audit.sinks") == "critical"


@pytest.mark.django_db(transaction=True)
def test_migrated_table_is_ok(settings):
    assert _severity(check()[0], "audit.database") == "ok"


@pytest.mark.parametrize(("days", "severity"), [(30, "warning"), (89, "warning"), (90, "info"), (365, "ok"), (4000, "info")])
@pytest.mark.django_db(transaction=True)
def test_retention_ranges(settings, days, severity):
    settings.AUDIT_RETENTION_DAYS = days
    document = check()[0]
    assert _severity(document, "audit.retention") == severity
    if days == 90:
        assert "PCI DSS" in next(f["message"] for f in document["findings"] if f["id"] == "audit.retention")


@pytest.mark.parametrize(
    ("backend", "options", "expected"),
    [
        ("django.core.cache.backends.dummy.DummyCache", {}, {"audit.alerts.cache": "critical"}),
        ("django.core.cache.backends.locmem.LocMemCache", {}, {"audit.alerts.cache": "warning"}),
        ("django.core.cache.backends.redis.RedisCache", {}, {"audit.alerts.cache.timeout": "warning"}),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_alert_cache_must_be_shared_and_bounded(settings, backend, options, expected):
    if "redis" in backend:
        require_server("redis", "127.0.0.1", 6379)
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "alerts": {"BACKEND": backend, "LOCATION": "redis://127.0.0.1:6379/0", "OPTIONS": options},
    }
    settings.AUDIT_CACHE_ALIAS = "alerts"
    found = _by_id(check()[0])
    for finding_id, severity in expected.items():
        assert found[finding_id] == severity


@pytest.mark.django_db(transaction=True)
def test_a_dead_redis_is_critical(settings):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{port}/0",
                                   "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}}}
    document = check()[0]
    [finding] = [f for f in document["findings"] if f["id"] == "audit.alerts.cache"]
    assert finding["severity"] == "critical" and "does not answer" in finding["message"]


@pytest.mark.django_db(transaction=True)
def test_private_addresses_only_suggest_an_untrusted_proxy(settings, insert):
    assert _severity(check()[0], "audit.proxies") == "ok"
    insert(30, client_ip="127.0.0.1", age=timedelta(minutes=1))
    document = check()[0]
    assert _severity(document, "audit.proxies") == "warning"
    settings.RAIL_DJANGO_TRUSTED_PROXIES = ["127.0.0.1"]
    assert _severity(check()[0], "audit.proxies") == "ok"


@pytest.mark.django_db(transaction=True)
def test_public_and_documentation_addresses_do_not_suggest_a_proxy(insert):
    insert(30, client_ip="203.0.113.5")  # ipaddress calls TEST-NET "private"; no proxy connects from there
    insert(30, client_ip="8.8.8.8")
    assert _severity(check()[0], "audit.proxies") == "ok"


@pytest.mark.django_db(transaction=True)
def test_webhook_over_plain_http_to_localhost_is_only_info(settings):
    settings.AUDIT_WEBHOOK_URL = "http://127.0.0.1:9/hook"
    settings.AUDIT_WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    found = _by_id(check()[0])
    assert found["audit.webhook.https"] == "info" and "audit.webhook.signed" not in found


@pytest.mark.django_db(transaction=True)
def test_rail_django_setting_errors_are_critical_findings(settings):
    settings.AUDIT_RETENTION_DAYS = -5
    document = check()[0]
    assert _severity(document, "rail_django.E008") == "critical"
    assert document["status"] == "fail"


def _finding(document, finding_id):
    return next(f for f in document["findings"] if f["id"] == finding_id)


@pytest.mark.parametrize(
    "key",
    [
        "sample-project-demo-key-not-secret-" + "0" * 20,  # the sample project's key, public in this repository
        "q7#Lm2!vX9@kR4$demo$tY8^wB3&nC6*eF1(gH5)jK0_uP-sD",  # long and varied, but says what it is
        "django-insecure-k9$Vq2!mZ7@xL4#pR8^tW1&yB6*nC3(eF5)gH0",
        "CHANGE_ME-k9$Vq2!mZ7@xL4#pR8^tW1&yB6*nC3(eF5)gH0_jK-uM",
        "k9$Vq2!mZ7@xL4#pR8^tW1&yB6*nC3(eF5)gH0_jK-uM+sD=aQ-Insecure",
    ],
)
@pytest.mark.django_db(transaction=True)
def test_a_published_or_placeholder_secret_key_is_critical(settings, key):
    settings.SECRET_KEY = key
    document, text = check()
    finding = _finding(document, "django.secret_key")
    assert finding["severity"] == "critical" and document["status"] == "fail"
    assert "long and random-looking" not in text and "not a known sample value" not in text


@pytest.mark.django_db(transaction=True)
def test_a_random_secret_key_is_ok_and_a_published_fallback_is_flagged(settings):
    settings.SECRET_KEY = "r8ii_0tzjjwr(ugu5#_-meye)qj$&#dz-2ipyu-xq*izw4b_-6"
    assert _severity(check()[0], "django.secret_key") == "ok"
    settings.SECRET_KEY_FALLBACKS = ["sample-project-demo-key-not-secret-" + "0" * 20]
    assert _severity(check()[0], "django.secret_key_fallbacks") == "warning"


@pytest.mark.django_db(transaction=True)
def test_a_missing_integrity_key_is_a_warning_with_a_hint(settings):
    settings.AUDIT_INTEGRITY_KEY = None
    document, text = check()
    finding = _finding(document, "audit.integrity")
    assert finding["severity"] == "warning" and "not set" in finding["message"]
    assert "AUDIT_INTEGRITY_KEY" in finding["hint"] and "audit_management verify" in finding["hint"]
    assert "fix: Set AUDIT_INTEGRITY_KEY" in text
    settings.AUDIT_INTEGRITY_KEY = "r8ii_0tzjjwr(ugu5#_-meye)qj$&#dz"
    assert _severity(check()[0], "audit.integrity") == "ok"
    settings.AUDIT_INTEGRITY_KEY = "demo-integrity-key-0123456789"
    assert _severity(check()[0], "audit.integrity") == "critical"
    settings.AUDIT_STORE_IN_DATABASE = False  # no stored rows, nothing to chain
    settings.AUDIT_STORE_IN_FILE = True
    assert "audit.integrity" not in _by_id(check()[0])


@pytest.mark.django_db(transaction=True)
def test_text_output_escapes_control_characters_of_settings_and_errors(settings):
    # ESC c resets the terminal, C1 CSI (U+009B) "2J" clears it, U+2028 starts a line in some viewers
    settings.AUDIT_WEBHOOK_URL = "http://siem\x1bc\x9b2J.example.com\u2028OK       all.clear: forged/hook"
    _, text = check()
    assert not {"\x1b", "\x9b", "\u2028"} & set(text)
    [line] = [line for line in text.splitlines() if "audit.webhook.https" in line]
    assert "siem\\x1bc\\x9b2j.example.com\\u2028ok" in line  # urlparse lower-cases the host
    assert not any(line.startswith("OK       all.clear") for line in text.splitlines())


def test_bad_flags():
    with pytest.raises(CommandError):
        call_command("security_check", "--format", "xml")
