"""Tamper evidence: the keyed chain detects rows edited, deleted or inserted with raw SQL."""

import time
from datetime import timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from rail_django.integrity.chain import record_anchor, seal_pending, verify_chain
from rail_django.models import allow_retention_delete
from rail_django.security import EventType, security

pytestmark = pytest.mark.django_db(transaction=True)
TABLE = "rail_django_auditeventmodel"


@pytest.fixture
def keyed(settings):
    settings.AUDIT_INTEGRITY_KEY = "integrity-test-key-0123456789abcdef"
    settings.AUDIT_STORE_IN_FILE = False


def _emit(n, **context):
    return [security.emit(EventType.DATA_UPDATE, context={"n": i, **context}) for i in range(n)]


def _sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_sealed_chain_verifies(keyed, audit_model):
    # Key order and Decimal formatting change on the way through jsonb: hashes use what is read back.
    _emit(20, zeta=1, alpha={"b": 2, "a": Decimal("1.50")}, amount=Decimal("10.10"))
    assert seal_pending() == 20
    report = verify_chain()
    assert report.ok, report.problem
    assert (report.checked, report.head, report.unsealed) == (20, 20, 0)
    assert list(audit_model.objects.order_by("id").values_list("chain_sequence", flat=True)) == list(range(1, 21))


def test_row_edited_with_raw_sql_is_found(keyed, audit_model):
    events = _emit(10)
    seal_pending()
    target = audit_model.objects.get(event_id=events[6].event_id)
    _sql(f"UPDATE {TABLE} SET username = %s WHERE id = %s", ["mallory", target.id])
    report = verify_chain()
    assert report.problem.kind == "changed"
    assert report.problem.sequence == target.chain_sequence
    assert report.problem.event_id == str(target.event_id)


def test_row_deleted_with_raw_sql_is_found(keyed, audit_model):
    _emit(10)
    seal_pending()
    _sql(f"DELETE FROM {TABLE} WHERE chain_sequence = %s", [4])
    report = verify_chain()
    assert report.problem.kind == "removed" and report.problem.sequence == 4


def test_last_rows_deleted_are_found_through_the_signed_head(keyed, audit_model):
    _emit(5)
    seal_pending()
    _sql(f"DELETE FROM {TABLE} WHERE chain_sequence >= %s", [4])
    report = verify_chain()
    assert report.problem.kind == "removed" and "head" in report.problem.detail


def test_head_wound_back_with_raw_sql_is_found(keyed, audit_model):
    _emit(5)
    seal_pending()
    _sql("UPDATE rail_django_auditchainstate SET sequence = 3 WHERE name = 'head'")
    assert verify_chain().problem.kind == "state_forged"


def test_back_dated_row_inserted_with_raw_sql_is_found(keyed, audit_model):
    _emit(5)
    seal_pending()
    forged = security.build(EventType.AUTH_LOGIN_SUCCESS, action="forged")
    forged.timestamp = timezone.now() - timedelta(days=30)
    from rail_django.sinks.database import event_to_row

    row = event_to_row(audit_model, forged)
    row.save()  # as an INSERT through SQL would: no chain fields
    _emit(2)
    seal_pending()
    report = verify_chain()
    assert report.problem.kind == "out_of_order"
    assert report.problem.event_id == str(forged.event_id)


def test_row_inserted_with_a_forged_chain_position_is_found(keyed, audit_model):
    events = _emit(3)
    seal_pending()
    # Delete row 2 and re-insert a forged one claiming its place and hash.
    original = audit_model.objects.get(chain_sequence=2)
    _sql(f"DELETE FROM {TABLE} WHERE id = %s", [original.id])
    forged = security.build(EventType.DATA_UPDATE, context={"n": 1, "amount": "changed"})
    forged.timestamp = original.timestamp
    from rail_django.sinks.database import event_to_row

    row = event_to_row(audit_model, forged)
    row.chain_sequence, row.chain_hash = 2, original.chain_hash
    row.save()
    report = verify_chain()
    assert report.problem.kind == "changed" and report.problem.sequence == 2
    assert events


def test_retention_cleanup_keeps_the_chain_verifiable(keyed, audit_model):
    _emit(10)
    seal_pending()
    old = audit_model.objects.filter(chain_sequence__lte=6)
    record_anchor(old)
    with allow_retention_delete():
        old.delete()
    report = verify_chain()
    assert report.ok, report.problem
    assert (report.anchor, report.checked) == (6, 4)


def test_verify_since_starts_from_the_preceding_hash(keyed, audit_model):
    _emit(6)
    seal_pending()
    since = audit_model.objects.get(chain_sequence=4).timestamp
    report = verify_chain(since=since)
    assert report.ok and report.checked == 3


def test_background_writer_seals_without_being_asked(keyed, settings, audit_model):
    settings.SECURITY_EVENT_ASYNC = True
    _emit(30)
    assert security.flush(timeout=30)
    for _ in range(100):
        if not audit_model.objects.filter(chain_sequence__isnull=True).exists():
            break
        time.sleep(0.05)
    assert not audit_model.objects.filter(chain_sequence__isnull=True).exists()
    assert verify_chain().ok


def test_sealing_is_the_only_update_the_model_allows(keyed, audit_model):
    from rail_django.models import AppendOnlyError

    _emit(1)
    row = audit_model.objects.get()
    row.username = "x"
    with pytest.raises(AppendOnlyError):
        audit_model.objects.bulk_update([row], ["username", "chain_hash"])


def test_without_a_key_nothing_is_sealed(audit_model):
    _emit(3)
    assert seal_pending() == 0
    assert not audit_model.objects.filter(chain_sequence__isnull=False).exists()
    with pytest.raises(ValueError, match="AUDIT_INTEGRITY_KEY"):
        verify_chain()


def test_verify_with_checkpoints_holds_while_threads_emit_and_the_writer_seals(keyed, settings, tmp_path, audit_model):
    """No false alarm under load: rows sealed and checkpoints published while verify runs."""
    import threading

    from rail_django.integrity.checkpoints import read_checkpoints

    settings.SECURITY_EVENT_ASYNC = True
    settings.AUDIT_STORE_IN_FILE = True
    settings.AUDIT_LOG_FILE = log = tmp_path / "audit.log"
    settings.AUDIT_INTEGRITY_CHECKPOINT_SECONDS = 0.3

    def emitter(worker: int) -> None:
        for n in range(150):
            security.emit(EventType.DATA_UPDATE, context={"worker": worker, "n": n})
            time.sleep(0.01)

    threads = [threading.Thread(target=emitter, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    reports = []
    while any(thread.is_alive() for thread in threads):
        scan = read_checkpoints([log]) if log.exists() else None  # checkpoints first, then the head
        if scan is not None and scan.found:
            reports.append(verify_chain(checkpoints=scan))
        time.sleep(0.2)
    for thread in threads:
        thread.join()
    assert security.flush(timeout=30)
    for _ in range(200):
        if not audit_model.objects.filter(chain_sequence__isnull=True).exists():
            break
        time.sleep(0.05)
    published_while_emitting = read_checkpoints([log]).found
    call_command("audit_management", "checkpoint", stdout=StringIO())  # one more, vouching for the final head
    assert security.flush(timeout=30)
    final = verify_chain(checkpoints=read_checkpoints([log]))
    assert reports and all(report.ok for report in reports), [r.problem for r in reports if not r.ok]
    assert final.ok, final.problem
    # How many the sealer published depends on how often it ran (load): at least one, and the command's.
    assert published_while_emitting and final.checkpoints.checked >= 2
    assert final.checked >= 600  # every emitted event (and the checkpoints' own rows) verified


def test_rows_waiting_together_are_sealed_in_time_order(keyed, audit_model):
    """A key set on a table whose rows were stored out of time order (a replayed journal): no false alarm."""
    from rail_django.sinks.database import event_to_row

    late = security.build(EventType.DATA_READ, action="stored first, happened last")
    early = security.build(EventType.DATA_READ, action="stored last, happened an hour earlier")
    early.timestamp = late.timestamp - timedelta(hours=1)
    event_to_row(audit_model, late).save()
    event_to_row(audit_model, early).save()
    assert seal_pending() == 2
    assert audit_model.objects.get(event_id=early.event_id).chain_sequence == 1
    report = verify_chain()
    assert report.ok, report.problem


def test_the_stored_chain_keeps_its_format_so_existing_chains_still_verify(keyed, audit_model):
    """Row hashes and the head's HMAC are computed exactly as before the Ed25519 work (no re-sealing on upgrade)."""
    import hashlib
    import hmac
    import json

    from rail_django.models import AuditChainState

    _emit(3)
    seal_pending()
    key = b"integrity-test-key-0123456789abcdef"
    previous = "0" * 64
    for row in audit_model.objects.order_by("chain_sequence"):
        fields = {name: getattr(row, name) for name in (
            "event_id", "event_type", "severity", "user_id", "username", "client_ip", "user_agent", "timestamp",
            "request_path", "request_method", "additional_data", "success", "error_message", "correlation_id",
            "session_id")}
        fields["timestamp"] = row.timestamp.astimezone(dt_timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds")
        fields["event_id"] = str(row.event_id)
        fields["chain_sequence"] = row.chain_sequence
        body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        previous = hmac.new(key, previous.encode() + b"\n" + body, hashlib.sha256).hexdigest()
        assert row.chain_hash == previous
    head = AuditChainState.objects.get(name="head")
    assert head.signature == hmac.new(key, f"head:3:{previous}".encode(), hashlib.sha256).hexdigest()


def test_the_sealer_refuses_to_extend_a_head_it_did_not_sign(keyed, audit_model, caplog):
    import logging

    _emit(2)
    seal_pending()
    _sql("UPDATE rail_django_auditchainstate SET sequence = 5 WHERE name = 'head'")
    _emit(1)
    with caplog.at_level(logging.ERROR, logger="rail_django.audit"):
        assert seal_pending() == 0
    assert "Audit rows are not sealed: the chain head (sequence 5) was altered" in caplog.text
    assert audit_model.objects.filter(chain_sequence__isnull=True).count() == 1
