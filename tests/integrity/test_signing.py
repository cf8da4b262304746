"""AUDIT_INTEGRITY_SIGNING_KEY: how the key may be given, what a bad one does, and what a public key can (not) do."""

from __future__ import annotations

import logging
from io import StringIO

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.test import override_settings

from rail_django.integrity.sealing import seal_pending
from rail_django.integrity.signing import ED25519, load_public_key
from rail_django.security import EventType, security
from tests.integrity.conftest import STATE, ed25519_pem, sql

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def keys(tmp_path):
    private, public = ed25519_pem()
    (tmp_path / "signing.pem").write_text(private)
    (tmp_path / "signing.pub.pem").write_text(public)
    return {"private": private, "private_file": tmp_path / "signing.pem", "public_file": tmp_path / "signing.pub.pem"}


def _verify_with_public_key(path, *extra) -> str:
    out = StringIO()
    with override_settings(AUDIT_INTEGRITY_SIGNING_KEY=None, AUDIT_INTEGRITY_KEY=None):
        call_command("audit_management", "verify", "--public-key", str(path), *extra, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("form", ["pem-text", "pem-bytes", "path-text", "path"])
def test_the_signing_key_may_be_pem_text_bytes_or_a_file_path(settings, keys, form, audit_model):
    settings.AUDIT_INTEGRITY_SIGNING_KEY = {
        "pem-text": keys["private"], "pem-bytes": keys["private"].encode(),
        "path-text": str(keys["private_file"]), "path": keys["private_file"],
    }[form]
    for n in range(3):
        security.emit(EventType.DATA_READ, context={"n": n})
    assert seal_pending() == 3
    (signature,) = sql(f"SELECT signature FROM {STATE} WHERE name = 'head'")[0]
    assert signature.startswith("ed25519:") and len(signature) == 96
    assert "Integrity chain OK: 3 events verified" in _verify_with_public_key(keys["public_file"])


def test_the_signing_key_wins_over_the_hmac_key(settings, keys):
    settings.AUDIT_INTEGRITY_KEY = "an-hmac-key-0123456789abcdef"
    settings.AUDIT_INTEGRITY_SIGNING_KEY = keys["private"]
    security.emit(EventType.DATA_READ)
    seal_pending()
    assert "Integrity chain OK: 1 events verified" in _verify_with_public_key(keys["public_file"])


def test_another_public_key_does_not_vouch_for_the_chain(settings, keys, tmp_path):
    settings.AUDIT_INTEGRITY_SIGNING_KEY = keys["private"]
    security.emit(EventType.DATA_READ)
    seal_pending()
    (tmp_path / "other.pub.pem").write_text(ed25519_pem()[1])
    with pytest.raises(CommandError, match=r"state_forged at sequence 1: the chain head \(sequence 1\) was altered"):
        _verify_with_public_key(tmp_path / "other.pub.pem")


def test_a_chain_sealed_with_hmac_is_named_when_checked_with_a_public_key(settings, keys):
    settings.AUDIT_INTEGRITY_KEY = "an-hmac-key-0123456789abcdef"
    security.emit(EventType.DATA_READ)
    seal_pending()
    with pytest.raises(CommandError, match="carries an HMAC-SHA256 signature, not an Ed25519 signature .* or the key changed"):
        _verify_with_public_key(keys["public_file"])


def test_a_public_key_can_verify_but_not_sign(keys):
    verifier = load_public_key(keys["public_file"])
    assert verifier.algorithm == ED25519 and not verifier.can_sign
    with pytest.raises(Exception, match="needs the Ed25519 private key"):
        verifier.sign(b"head:1:" + b"0" * 64)


def test_verify_with_a_public_key_seals_nothing(settings, keys, audit_model):
    settings.AUDIT_INTEGRITY_SIGNING_KEY = keys["private"]
    security.emit(EventType.DATA_READ)
    out = _verify_with_public_key(keys["public_file"])
    assert "0 events verified" in out and "1 not sealed yet" in out
    assert audit_model.objects.filter(chain_sequence__isnull=True).count() == 1


@pytest.mark.parametrize("value, message", [
    ("not a key at all", "AUDIT_INTEGRITY_SIGNING_KEY: cannot read the key file 'not a key at all'"),
    ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
     "AUDIT_INTEGRITY_SIGNING_KEY is not an unencrypted PEM private key"),
    ("ec", "AUDIT_INTEGRITY_SIGNING_KEY must be an Ed25519 private key, not"),
    (12345, "AUDIT_INTEGRITY_SIGNING_KEY must be PEM text, PEM bytes or a file path, not int"),
])
def test_a_bad_signing_key_is_a_clear_error_and_never_fails_an_emit(settings, value, message, audit_model, caplog):
    if value == "ec":
        value = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    settings.AUDIT_INTEGRITY_SIGNING_KEY = value
    # A bad value is reported by `manage.py check` (E053) and the setting falls back to its default (no
    # signing key), as every setting of the registry does; emitting never fails because of it.
    with caplog.at_level(logging.WARNING):
        event = security.emit(EventType.DATA_READ)
        security.emit(EventType.DATA_READ)
        seal_pending()
    assert event is not None and audit_model.objects.count() == 2
    assert any("AUDIT_INTEGRITY_SIGNING_KEY" in r.getMessage() for r in caplog.records)
    with pytest.raises(SystemCheckError, match="rail_django.E053"):
        call_command("check", stdout=StringIO(), stderr=StringIO())
    assert message  # the reason is in the check's text (test_manage_py_check_names_a_bad_integrity_setting)


def test_a_bad_public_key_file_is_a_clear_error(keys, tmp_path):
    with pytest.raises(CommandError, match="--public-key: cannot read the key file"):
        _verify_with_public_key(tmp_path / "missing.pem")
    with pytest.raises(CommandError, match="is not a PEM public key"):
        _verify_with_public_key(keys["private_file"])


@pytest.mark.parametrize("name, value, check_id", [
    ("AUDIT_INTEGRITY_SIGNING_KEY", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "rail_django.E053"),
    ("AUDIT_INTEGRITY_CHECKPOINT_SECONDS", -5, "rail_django.E054"),
    ("AUDIT_INTEGRITY_CHECKPOINT_SECONDS", "60", "rail_django.E054"),
])
def test_manage_py_check_names_a_bad_integrity_setting(settings, name, value, check_id):
    from django.core.management.base import SystemCheckError

    setattr(settings, name, value)
    with pytest.raises(SystemCheckError, match=f"{check_id}.*{name}") as failed:
        call_command("check", stdout=StringIO(), stderr=StringIO())
    assert "BEGIN PRIVATE KEY" not in str(failed.value)  # a key is never printed


def test_manage_py_check_accepts_a_good_signing_key_and_interval(settings, keys):
    settings.AUDIT_INTEGRITY_SIGNING_KEY = keys["private_file"]
    settings.AUDIT_INTEGRITY_CHECKPOINT_SECONDS = 0
    call_command("check", stdout=StringIO(), stderr=StringIO())
