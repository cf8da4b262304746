"""Checkpoints: published by the sealer (at most one per interval) and by the command, to every sink, signed."""

from __future__ import annotations

import json
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from rail_django.integrity.checkpoints import Checkpoint, make_checkpoint, publish, read_checkpoints
from rail_django.integrity.sealing import seal_pending
from rail_django.integrity.signing import configured_signer, signer_from_private_key
from rail_django.security import EventType, security
from tests.integrity.conftest import STATE, TABLE, ed25519_pem, sql

pytestmark = pytest.mark.django_db(transaction=True)


def _checkpoints(path) -> list[Checkpoint]:
    return [found.checkpoint for found in read_checkpoints([path]).found] if path.exists() else []


def _wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_sealer_publishes_a_signed_checkpoint_to_file_database_and_webhook(chain, settings, witness, audit_model):
    settings.SECURITY_EVENT_ASYNC = True  # the real background writer seals and publishes
    settings.AUDIT_INTEGRITY_CHECKPOINT_SECONDS = 1
    for n in range(3):
        security.emit(EventType.DATA_READ, context={"n": n})
    _wait_for(lambda: _checkpoints(chain.log))
    security.flush(timeout=30)
    _wait_for(lambda: any("system.integrity.checkpoint" in line for line in witness.lines()))
    [checkpoint] = _checkpoints(chain.log)
    signer = configured_signer()
    assert signer.verify(checkpoint.message(), checkpoint.signature)
    assert (checkpoint.sequence, checkpoint.alg, checkpoint.signer) == (3, signer.algorithm, signer.signer_id)
    assert checkpoint.head == audit_model.objects.get(chain_sequence=3).chain_hash
    stored = audit_model.objects.get(event_type="system.integrity.checkpoint")
    assert stored.severity == "warning" and stored.additional_data["context"] == checkpoint.to_context()
    [received] = [json.loads(line) for line in witness.lines() if "system.integrity.checkpoint" in line]
    assert received["context"] == checkpoint.to_context()

    time.sleep(2.5)  # idle: the checkpoint's own row is sealed, and that alone publishes nothing more
    assert len(_checkpoints(chain.log)) == 1
    security.emit(EventType.DATA_READ)
    _wait_for(lambda: len(_checkpoints(chain.log)) == 2)
    assert _checkpoints(chain.log)[1].sequence == 5  # rows 1-3 data, 4 the first checkpoint, 5 data


def test_a_burst_of_seals_publishes_one_checkpoint_of_the_newest_head(chain, settings):
    settings.AUDIT_INTEGRITY_CHECKPOINT_SECONDS = 2
    started = time.monotonic()
    for burst in range(3):
        security.emit(EventType.DATA_READ, context={"burst": burst})
        seal_pending()
    assert time.monotonic() - started < 1.8, "the bursts must fall inside one interval"
    assert _checkpoints(chain.log) == []  # the interval starts when settings (re)load: none yet
    _wait_for(lambda: _checkpoints(chain.log))
    time.sleep(0.5)
    [checkpoint] = _checkpoints(chain.log)
    assert checkpoint.sequence == 3


def test_an_interval_of_zero_publishes_none_from_the_sealer(chain, settings):
    settings.AUDIT_INTEGRITY_CHECKPOINT_SECONDS = 0
    security.emit(EventType.DATA_READ)
    seal_pending()
    time.sleep(1.5)
    assert _checkpoints(chain.log) == []


def test_the_checkpoint_command_seals_publishes_and_says_where(chain, witness, audit_model):
    for n in range(4):
        security.emit(EventType.DATA_READ, context={"n": n})
    out = chain.checkpoint()
    head = audit_model.objects.get(chain_sequence=4).chain_hash
    signer = configured_signer()
    assert out.startswith(f"Checkpoint published: sequence 4, head {head}, at ")
    assert out.rstrip().endswith(f"signed with {signer.describe()}; sent to database, file, webhook.")
    [checkpoint] = _checkpoints(chain.log)
    assert (checkpoint.sequence, checkpoint.head) == (4, head)
    assert any(json.loads(line)["context"] == checkpoint.to_context() for line in witness.lines())


def test_the_webhook_is_not_listed_when_its_minimum_severity_is_above_warning(chain, witness, settings):
    settings.AUDIT_WEBHOOK_MIN_SEVERITY = "error"
    assert chain.checkpoint().rstrip().endswith("sent to database, file.")


def test_a_webhook_receiver_on_another_system_is_enough_to_find_emptied_tables(chain, witness):
    for n in range(5):
        security.emit(EventType.DATA_READ, context={"n": n})
    chain.checkpoint()
    security.flush(timeout=30)
    sql(f"DELETE FROM {TABLE}")
    sql(f"DELETE FROM {STATE}")
    chain.log.unlink()  # the owner of the host wiped the local log too
    chain.log = witness.path  # the auditor reads what the other system received
    assert "Integrity check FAILED: emptied at sequence 5" in chain.failure(checkpoints=True)


def test_checkpoint_fields_are_never_redacted(chain, settings):
    settings.AUDIT_REDACTION_FIELDS = ["signature", "signer", "head", "sequence", "alg", "at", "checkpoint"]
    security.emit(EventType.DATA_READ)
    chain.checkpoint()
    [checkpoint] = _checkpoints(chain.log)
    assert configured_signer().verify(checkpoint.message(), checkpoint.signature)
    assert "Integrity chain OK" in chain.verify(checkpoints=True)


def test_the_checkpoint_command_needs_a_key_and_audit_logging(settings):
    with pytest.raises(CommandError, match="AUDIT_INTEGRITY_KEY is not set"):
        call_command("audit_management", "checkpoint", stdout=StringIO())
    settings.AUDIT_INTEGRITY_KEY = "checkpoint-command-key-0123456789"
    settings.GRAPHQL_ENABLE_AUDIT_LOGGING = False
    with pytest.raises(CommandError, match="GRAPHQL_ENABLE_AUDIT_LOGGING is False"):
        call_command("audit_management", "checkpoint", stdout=StringIO())


def test_the_checkpoint_command_refuses_to_vouch_for_a_forged_head(chain):
    security.emit(EventType.DATA_READ)
    seal_pending()
    sql(f"UPDATE {STATE} SET sequence = 7 WHERE name = 'head'")
    with pytest.raises(CommandError, match="Refusing to vouch for the chain head: the chain head"):
        chain.checkpoint()
    assert _checkpoints(chain.log) == []


def test_checkpoints_of_other_keys_are_counted_not_trusted(chain):
    security.emit(EventType.DATA_READ)
    chain.checkpoint()
    other = signer_from_private_key(ed25519_pem()[0])  # another deployment writing to the same log
    publish(make_checkpoint(other, 99, "f" * 64))
    security.flush(timeout=30)
    out = chain.verify(checkpoints=True)
    assert "Integrity chain OK" in out and "1 checkpoints signed by other keys were not checked." in out
