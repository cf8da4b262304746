"""docs/integrity.md's public-key blocks, run: make the key pair with openssl, configure it, checkpoint, audit."""

from __future__ import annotations

import shlex
import subprocess
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings

from rail_django.integrity.signing import load_public_key, signer_from_private_key
from rail_django.security import EventType, security
from tests.docs.markdown_blocks import block
from tests.docs.test_reference_docs import assert_check_passes, assert_real_settings, settings_block


def _commands(marker: str) -> list[list[str]]:
    return [shlex.split(line, comments=True) for line in block("integrity.md", "bash", marker).strip().splitlines()]


@pytest.mark.django_db(transaction=True)
def test_public_key_blocks_make_a_key_pair_sign_checkpoints_and_verify_without_a_secret(tmp_path, settings):
    for words in _commands("openssl genpkey -algorithm ed25519"):
        assert words[0] == "openssl"
        subprocess.run(words, cwd=tmp_path, check=True, capture_output=True, timeout=30)
    private, public = tmp_path / "audit-signing.pem", tmp_path / "audit-signing.pub.pem"
    assert signer_from_private_key(private).signer_id == load_public_key(public).signer_id  # one key pair

    values = settings_block(block("integrity.md", "python", "AUDIT_INTEGRITY_SIGNING_KEY"))
    assert values == {"AUDIT_INTEGRITY_SIGNING_KEY": "/run/secrets/audit-signing.pem", "AUDIT_INTEGRITY_CHECKPOINT_SECONDS": 60}
    assert_real_settings(values)
    values["AUDIT_INTEGRITY_SIGNING_KEY"] = str(private)  # where the secret is mounted here
    assert_check_passes(values)

    settings.AUDIT_STORE_IN_FILE = True
    settings.AUDIT_LOG_FILE = log = tmp_path / "logs" / "audit.log"
    paths = {"logs/audit.log": str(log), "audit-signing.pub.pem": str(public)}
    checkpoint, verify = _commands("audit_management checkpoint")
    assert checkpoint[:3] == verify[:3] == ["python", "manage.py", "audit_management"]
    with override_settings(**values):
        for n in range(3):
            security.emit(EventType.DATA_UPDATE, resource_type="order", resource_id=n)
        out = StringIO()
        call_command(*checkpoint[2:], stdout=out)
        assert out.getvalue().startswith("Checkpoint published: sequence 3,")
    out = StringIO()
    with override_settings(AUDIT_INTEGRITY_SIGNING_KEY=None, AUDIT_INTEGRITY_KEY=None):  # the auditor: no secret
        call_command(*[paths.get(word, word) for word in verify[2:]], stdout=out)
    assert "Integrity chain OK: 3 events verified" in out.getvalue()
    assert f"Checkpoints: 1 checked from {log}; the newest vouches for sequence 3" in out.getvalue()
