"""Misconfigured settings fail `manage.py check` with rail_django.E0NN ids naming the setting."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from rail_django.checks import check_settings


def _ids(**overrides):
    with override_settings(**overrides):
        return {(e.id, e.msg.split(" is ")[0]) for e in check_settings()}


def test_default_settings_pass():
    assert check_settings() == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"GRAPHQL_ENABLE_AUDIT_LOGGING": "yes"}, ("rail_django.E001", "GRAPHQL_ENABLE_AUDIT_LOGGING")),
        ({"AUDIT_STORE_IN_DATABASE": 1}, ("rail_django.E002", "AUDIT_STORE_IN_DATABASE")),
        ({"AUDIT_STORE_IN_FILE": None}, ("rail_django.E003", "AUDIT_STORE_IN_FILE")),
        ({"AUDIT_LOG_FILE": 42}, ("rail_django.E004", "AUDIT_LOG_FILE")),
        ({"AUDIT_WEBHOOK_URL": "ftp://example.org/x"}, ("rail_django.E005", "AUDIT_WEBHOOK_URL")),
        ({"AUDIT_WEBHOOK_MIN_SEVERITY": "loud"}, ("rail_django.E006", "AUDIT_WEBHOOK_MIN_SEVERITY")),
        ({"AUDIT_WEBHOOK_SECRET": "whsec_***not base64***"}, ("rail_django.E007", "AUDIT_WEBHOOK_SECRET")),
        ({"AUDIT_RETENTION_DAYS": -1}, ("rail_django.E008", "AUDIT_RETENTION_DAYS")),
        ({"AUDIT_ALERT_THRESHOLDS": {"failed_logins_per_ip": 0}}, ("rail_django.E009", "AUDIT_ALERT_THRESHOLDS['failed_logins_per_ip']")),
        ({"AUDIT_ALERT_THRESHOLDS": {"typo": 3}}, ("rail_django.E009", "AUDIT_ALERT_THRESHOLDS['typo']")),
        ({"AUDIT_REDACTION_FIELDS": "password"}, ("rail_django.E010", "AUDIT_REDACTION_FIELDS")),
        ({"AUDIT_REDACTION_MASK": ""}, ("rail_django.E011", "AUDIT_REDACTION_MASK")),
        ({"RAIL_DJANGO_TRUSTED_PROXIES": ["10.0.0.0/33"]}, ("rail_django.E012", "RAIL_DJANGO_TRUSTED_PROXIES")),
        ({"SECURITY_EVENT_ASYNC": "false"}, ("rail_django.E013", "SECURITY_EVENT_ASYNC")),
        ({"AUDIT_EVENT_MODEL": "nope.Missing"}, ("rail_django.E014", "AUDIT_EVENT_MODEL")),
        ({"AUDIT_QUEUE_SIZE": 0}, ("rail_django.E015", "AUDIT_QUEUE_SIZE")),
        ({"AUDIT_CAPTURE_CLIENT_IP": "no"}, ("rail_django.E016", "AUDIT_CAPTURE_CLIENT_IP")),
        ({"AUDIT_DATABASE_ALIAS": "other"}, ("rail_django.E017", "AUDIT_DATABASE_ALIAS")),
        ({"AUDIT_CACHE_ALIAS": "missing"}, ("rail_django.E018", "AUDIT_CACHE_ALIAS")),
        ({"AUDIT_JOURNAL_DIR": 3}, ("rail_django.E050", "AUDIT_JOURNAL_DIR")),
        ({"AUDIT_JOURNAL_SEGMENT_BYTES": 10}, ("rail_django.E051", "AUDIT_JOURNAL_SEGMENT_BYTES")),
        ({"AUDIT_INTEGRITY_KEY": "short"}, ("rail_django.E052", "AUDIT_INTEGRITY_KEY")),
        ({"RAIL_DJANGO_TRUSTED_PROXIES": ["0.0.0.0/0"]}, ("rail_django.E019", "RAIL_DJANGO_TRUSTED_PROXIES")),
        ({"AUDIT_LOCKOUT_ENABLED": 1}, ("rail_django.E030", "AUDIT_LOCKOUT_ENABLED")),
        ({"AUDIT_ATTEMPTED_USERNAME": "clear"}, ("rail_django.E032", "AUDIT_ATTEMPTED_USERNAME")),
        ({"AUDIT_ADMIN_ENABLED": "on"}, ("rail_django.E040", "AUDIT_ADMIN_ENABLED")),
        ({"AUDIT_INTEGRITY_SIGNING_KEY": "/nonexistent/ed25519.pem"}, ("rail_django.E053", "AUDIT_INTEGRITY_SIGNING_KEY")),
        ({"AUDIT_INTEGRITY_SIGNING_KEY": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"},
         ("rail_django.E053", "AUDIT_INTEGRITY_SIGNING_KEY")),
        ({"AUDIT_INTEGRITY_CHECKPOINT_SECONDS": -1}, ("rail_django.E054", "AUDIT_INTEGRITY_CHECKPOINT_SECONDS")),
        ({"AUDIT_INTEGRITY_CHECKPOINT_SECONDS": float("nan")}, ("rail_django.E054", "AUDIT_INTEGRITY_CHECKPOINT_SECONDS")),
        ({"RAIL_DJANGO_ACCEPT_REQUEST_ID_FROM": True}, ("rail_django.E060", "RAIL_DJANGO_ACCEPT_REQUEST_ID_FROM")),
    ],
)
def test_each_bad_setting_has_its_id(overrides, expected):
    assert expected in _ids(**overrides)


def test_manage_py_check_fails_on_a_bad_setting():
    with override_settings(AUDIT_RETENTION_DAYS="ninety"):
        with pytest.raises(SystemCheckError, match=r"rail_django\.E008.*AUDIT_RETENTION_DAYS"):
            call_command("check")


def test_secret_values_are_not_echoed_by_checks():
    with override_settings(AUDIT_WEBHOOK_SECRET="whsec_!!!supersecretvalue"):
        messages = " ".join(e.msg for e in check_settings())
    assert "supersecretvalue" not in messages


def _ed25519_pem(tmp_path):
    """A real key from the openssl command line (the way the docs tell users to make one)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    path = tmp_path / "signing.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(path)], check=True, capture_output=True)
    return path


def test_an_ed25519_signing_key_passes_as_text_bytes_or_path(tmp_path):
    from rail_django.conf import get_config

    path = _ed25519_pem(tmp_path)
    pem = path.read_bytes()
    for value in (pem, pem.decode(), str(path), path):
        with override_settings(AUDIT_INTEGRITY_SIGNING_KEY=value):
            assert [e for e in check_settings() if e.id == "rail_django.E053"] == []
            assert get_config().integrity_signing_key.strip() == pem.strip()


def test_other_private_keys_are_not_ed25519(tmp_path):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    path = tmp_path / "ec.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)],
                   check=True, capture_output=True)
    pem = path.read_text()
    with override_settings(AUDIT_INTEGRITY_SIGNING_KEY=pem):
        [error] = [e for e in check_settings() if e.id == "rail_django.E053"]
    assert "'<hidden>'" in error.msg and pem.splitlines()[1] not in error.msg  # the key is not echoed
