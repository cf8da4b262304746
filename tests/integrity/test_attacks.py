"""Someone with SQL access but no key attacks the audit trail; ``audit_management verify`` must say so.

Every attack runs against an HMAC chain and an Ed25519 chain (verified with
``--public-key`` and no secret), with and without ``--checkpoints`` (the
JSON-lines log the checkpoints were sent to). Three attacks are invisible
from the database alone — the tail deleted with the head wound back, the
tables emptied, the emptied tables refilled — and the tests pin that verify
without checkpoints does not claim them (docs/integrity.md says the same).
"""

from __future__ import annotations

import json
from datetime import timedelta, timezone

import pytest
from django.db import DatabaseError, connection
from django.utils import timezone as django_timezone

from rail_django.integrity.canonical import chain_hash
from rail_django.integrity.sealing import seal_pending
from rail_django.integrity.signing import load_public_key
from rail_django.security import EventType, Outcome, security
from rail_django.sinks.database import event_to_row
from tests.integrity.conftest import HMAC_KEY, STATE, TABLE, sql

pytestmark = pytest.mark.django_db(transaction=True)

WITNESS = pytest.mark.parametrize("witness", [False, True], ids=["database-alone", "with-checkpoints"])
UNDETECTABLE_ALONE = "cannot be detected from the database alone"


def _emit(n: int, **context) -> None:
    for i in range(n):
        security.emit(EventType.DATA_UPDATE, resource_type="order", resource_id=i, context={"n": i, **context})


def _history(chain, n: int = 10) -> str:
    """``n`` more events, sealed, and a checkpoint of the head in the log file; the command's output."""
    _emit(n)
    out = chain.checkpoint()
    assert out.startswith("Checkpoint published: sequence ")
    return out


def _text_backend() -> bool:
    """SQLite and MariaDB keep JSON as text (MySQL's JSON type and PostgreSQL's jsonb normalise it)."""
    return connection.vendor == "sqlite" or getattr(connection, "mysql_is_mariadb", False)


# -- detected from the database alone ----------------------------------------------------------
@WITNESS
def test_an_edited_row_is_found(chain, witness, audit_model):
    _history(chain)
    target = audit_model.objects.get(chain_sequence=3)
    sql(f"UPDATE {TABLE} SET username = %s WHERE id = %s", ["mallory", target.id])
    failure = chain.failure(checkpoints=witness)
    assert f"Integrity check FAILED: changed at sequence 3 (event {target.event_id})" in failure


@WITNESS
def test_an_edited_row_whose_chain_was_rehashed_is_found_by_the_signed_head(chain, witness, audit_model):
    _history(chain)
    sql(f"UPDATE {TABLE} SET username = %s WHERE chain_sequence = 3", ["mallory"])
    # The attacker recomputes every hash from row 3 on. With Ed25519 the row key is public (from the
    # public key); with HMAC the attacker has to guess the secret.
    key = load_public_key(chain.public_key).row_key if chain.public_key else b"a guess at " + HMAC_KEY.encode()
    previous = audit_model.objects.get(chain_sequence=2).chain_hash
    for row in audit_model.objects.filter(chain_sequence__gte=3, chain_sequence__lte=10).order_by("chain_sequence"):
        previous = chain_hash(key, previous, row, row.chain_sequence)
        sql(f"UPDATE {TABLE} SET chain_hash = %s WHERE id = %s", [previous, row.id])
    failure = chain.failure(checkpoints=witness)
    if chain.mode == "ed25519":
        assert "Integrity check FAILED: head_mismatch at sequence 10: the signed head's hash differs" in failure
    else:
        assert "Integrity check FAILED: changed at sequence 3" in failure


@WITNESS
def test_a_row_deleted_in_the_middle_is_found(chain, witness):
    _history(chain)
    sql(f"DELETE FROM {TABLE} WHERE chain_sequence = 4")
    assert "Integrity check FAILED: removed at sequence 4: rows 4..4 are missing" in chain.failure(checkpoints=witness)


@WITNESS
def test_rows_deleted_at_the_end_are_found_through_the_signed_head(chain, witness):
    _history(chain)
    sql(f"DELETE FROM {TABLE} WHERE chain_sequence >= 9")
    failure = chain.failure(checkpoints=witness)
    assert "Integrity check FAILED: removed at sequence 9" in failure


@WITNESS
def test_a_back_dated_row_is_found(chain, witness, audit_model):
    _history(chain)
    forged = security.build(EventType.AUTH_LOGIN_SUCCESS, action="forged")
    forged.timestamp = django_timezone.now() - timedelta(days=30)
    event_to_row(audit_model, forged).save()  # as an INSERT through SQL would: no chain fields
    _emit(2)
    seal_pending()  # the sealer does not know: it seals what it finds
    failure = chain.failure(checkpoints=witness)
    assert "Integrity check FAILED: out_of_order at sequence" in failure and str(forged.event_id) in failure


@WITNESS
def test_a_head_rewritten_without_the_key_is_found(chain, witness):
    _history(chain)
    sql(f"UPDATE {STATE} SET sequence = 8 WHERE name = 'head'")
    assert "Integrity check FAILED: state_forged at sequence 8: the chain head" in chain.failure(checkpoints=witness)


# -- stored in another form: same hash, other SQL -----------------------------------------------
@WITNESS
def test_a_timestamp_rewritten_with_another_offset_is_found(chain, witness, audit_model):
    _history(chain)
    row = audit_model.objects.get(chain_sequence=3)
    shifted = row.timestamp.astimezone(timezone(-timedelta(hours=23, minutes=59)))
    text = shifted.isoformat(sep=" ")  # the same instant, written as "...-23:59"
    try:
        sql(f"UPDATE {TABLE} SET timestamp = %s WHERE id = %s", [text, row.id])
    except DatabaseError:
        assert connection.vendor != "sqlite"  # a typed column refuses the offset
    around = (row.timestamp - timedelta(seconds=1), row.timestamp + timedelta(seconds=1))
    window = audit_model.objects.filter(id=row.id, timestamp__range=around)
    if connection.vendor != "sqlite":
        # timestamptz / DATETIME keep an instant, not text: the same instant, or a changed one (and hash).
        if audit_model.objects.get(id=row.id).timestamp == row.timestamp:
            assert window.exists()
            assert "Integrity chain OK" in chain.verify(checkpoints=witness)
        else:
            assert "Integrity check FAILED: changed at sequence 3" in chain.failure(checkpoints=witness)
        return
    assert audit_model.objects.get(id=row.id).timestamp == row.timestamp  # Python reads the same instant...
    assert not window.exists()  # ...but SQL's time windows no longer find the row
    failure = chain.failure(checkpoints=witness)
    assert f"Integrity check FAILED: re_encoded at sequence 3 (event {row.event_id}): timestamp is stored as" in failure
    assert "-23:59" in failure


@WITNESS
def test_a_duplicate_json_key_in_front_is_found(chain, witness, audit_model):
    security.emit(EventType.AUTH_LOGIN_FAILURE, outcome=Outcome.FAILURE, action="Login attempt failed")
    _history(chain)
    row = audit_model.objects.get(event_type="auth.login.failure")
    (stored,) = sql(f"SELECT CAST(additional_data AS {'TEXT' if connection.vendor != 'mysql' else 'CHAR'}) "
                    f"FROM {TABLE} WHERE id = %s", [row.id])[0]
    forged = '{"outcome": "success", ' + stored.lstrip()[1:]
    value = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    sql(f"UPDATE {TABLE} SET additional_data = {value} WHERE id = %s", [forged, row.id])
    seen_by_sql = audit_model.objects.filter(id=row.id, additional_data__outcome="success").exists()
    assert audit_model.objects.get(id=row.id).outcome == "failure"  # Python reads the last key
    if not _text_backend():
        assert not seen_by_sql  # jsonb / MySQL JSON kept one key: both read "failure"
        assert "Integrity chain OK" in chain.verify(checkpoints=witness)
        return
    assert seen_by_sql  # SQL reads the first: the failed login looks like a success to every SQL filter
    failure = chain.failure(checkpoints=witness)
    assert f"Integrity check FAILED: re_encoded at sequence {row.chain_sequence} (event {row.event_id})" in failure
    assert "duplicate key 'outcome'" in failure


# -- invisible from the database alone: only checkpoints kept elsewhere show them ----------------
def _wind_back_head(chain) -> None:
    """Finding 1: save the head, let two more events be sealed and witnessed, delete them, write the head back."""
    _emit(10)
    seal_pending()
    (saved,) = sql(f"SELECT sequence, hash, signature FROM {STATE} WHERE name = 'head'")
    _emit(2)
    assert "Checkpoint published: sequence 12," in chain.checkpoint()
    sql(f"DELETE FROM {TABLE} WHERE chain_sequence > %s OR chain_sequence IS NULL", [saved[0]])
    sql(f"UPDATE {STATE} SET sequence = %s, hash = %s, signature = %s WHERE name = 'head'", list(saved))


def test_a_wound_back_head_is_not_claimed_detected_from_the_database_alone(chain):
    _wind_back_head(chain)
    out = chain.verify(checkpoints=False)
    assert "Integrity chain OK: 10 events verified from sequence 1 to 10" in out
    assert UNDETECTABLE_ALONE in out


def test_a_wound_back_head_is_found_with_checkpoints(chain):
    _wind_back_head(chain)
    failure = chain.failure(checkpoints=True)
    assert "Integrity check FAILED: head_wound_back at sequence 12: the table ends at sequence 10" in failure
    assert f"{chain.log}:" in failure and "rows 11..12 were deleted" in failure


def _empty_tables(chain) -> None:
    """Finding 2: every audit row and the chain state deleted."""
    _history(chain)
    sql(f"DELETE FROM {TABLE}")
    sql(f"DELETE FROM {STATE}")


def test_emptied_tables_are_not_claimed_detected_from_the_database_alone(chain):
    _empty_tables(chain)
    out = chain.verify(checkpoints=False)
    assert "Integrity chain OK: 0 events verified" in out and UNDETECTABLE_ALONE in out


def test_emptied_tables_are_found_with_checkpoints(chain):
    _empty_tables(chain)
    failure = chain.failure(checkpoints=True)
    assert "Integrity check FAILED: emptied at sequence 10: the table holds no sealed row" in failure


def _refill_back_dated(audit_model) -> None:
    """After emptying: a made-up history, in time order, that the sealer seals as if it were real."""
    start = django_timezone.now() - timedelta(days=3)
    for i in range(3):
        event = security.build(EventType.AUTH_LOGIN_SUCCESS, action=f"made up {i}")
        event.timestamp = start + timedelta(hours=i)
        event_to_row(audit_model, event).save()
    seal_pending()


def test_emptied_then_refilled_tables_are_not_claimed_detected_from_the_database_alone(chain, audit_model):
    _empty_tables(chain)
    _refill_back_dated(audit_model)
    out = chain.verify(checkpoints=False)
    assert "Integrity chain OK: 3 events verified from sequence 1 to 3" in out and UNDETECTABLE_ALONE in out


def test_emptied_then_refilled_tables_are_found_with_checkpoints(chain, audit_model):
    _empty_tables(chain)
    _refill_back_dated(audit_model)
    failure = chain.failure(checkpoints=True)
    assert "Integrity check FAILED: head_wound_back at sequence 10: the table ends at sequence 3" in failure


def test_a_history_resealed_past_the_newest_checkpoint_disagrees_with_it(chain, audit_model):
    _empty_tables(chain)
    _emit(12)  # a new chain from genesis, longer than the old one
    seal_pending()
    failure = chain.failure(checkpoints=True)
    assert "Integrity check FAILED: checkpoint_mismatch at sequence 10: row 10's hash" in failure
    assert "rewritten or re-sealed" in failure


# -- the witness itself --------------------------------------------------------------------------
def test_an_altered_checkpoint_in_the_file_is_found(chain):
    _history(chain)
    lines = chain.log.read_text().splitlines()
    index = max(i for i, line in enumerate(lines) if "system.integrity.checkpoint" in line)
    event = json.loads(lines[index])
    event["context"]["checkpoint"]["sequence"] = 9  # claim less, to cover a deletion
    lines[index] = json.dumps(event)
    chain.log.write_text("\n".join(lines) + "\n")
    failure = chain.failure(checkpoints=True)
    assert f"Integrity check FAILED: checkpoint_forged at sequence 9: the checkpoint at {chain.log}:{index + 1}" in failure


def test_a_log_without_checkpoints_is_a_failure_not_a_pass(chain):
    _emit(3)
    seal_pending()
    failure = chain.failure(checkpoints=True)
    assert "Integrity check FAILED: no_checkpoint: no checkpoint signed by" in failure


def test_an_intact_chain_reaches_its_checkpoints(chain):
    _history(chain)
    _emit(2)
    seal_pending()
    out = chain.verify(checkpoints=True)
    assert "Integrity chain OK" in out
    assert f"Checkpoints: 1 checked from {chain.log}; the newest vouches for sequence 10" in out
    assert UNDETECTABLE_ALONE not in out


def test_checkpoints_older_than_retention_still_verify(chain, audit_model):
    from rail_django.integrity.sealing import record_anchor
    from rail_django.models import allow_retention_delete

    assert "sequence 5," in _history(chain, n=5)
    assert "sequence 11," in _history(chain, n=5)  # row 6 is the first checkpoint's own event
    seal_pending()
    old = audit_model.objects.filter(chain_sequence__lte=7)
    record_anchor(old)
    with allow_retention_delete():
        old.delete()
    out = chain.verify(checkpoints=True)
    assert "Integrity chain OK" in out and "2 checked" in out
    assert "1 checkpoints are older than the retention anchor" in out


def test_verify_since_with_checkpoints_still_compares_every_checkpoint(chain, audit_model):
    _history(chain)
    _emit(3)
    seal_pending()
    since = audit_model.objects.get(chain_sequence=12).timestamp.isoformat()
    args = ["--since", since]
    out = chain.verify(checkpoints=True, extra=args)
    assert "Integrity chain OK: " in out and "Checkpoints: 1 checked" in out
    sql(f"UPDATE {TABLE} SET chain_hash = %s WHERE chain_sequence = 10", ["0" * 64])  # before --since
    assert "checkpoint_mismatch at sequence 10" in chain.failure(checkpoints=True, extra=args)
