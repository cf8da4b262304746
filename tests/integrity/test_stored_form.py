"""The stored-form check: every writer's rows pass on every backend; other forms of the same value do not."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection

from rail_django.delivery.dispatcher import dispatcher
from rail_django.integrity.sealing import seal_pending
from rail_django.integrity.verify import verify_chain
from rail_django.security import EventType, security
from rail_django.sinks.database import event_to_row
from tests.integrity.conftest import TABLE, sql

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def keyed(settings):
    settings.AUDIT_INTEGRITY_KEY = "stored-form-key-0123456789abcdef"
    settings.AUDIT_STORE_IN_FILE = False


def test_rows_from_every_writer_path_are_in_canonical_form(keyed, audit_model):
    # The sink's orjson path, with text that is not ASCII, floats and nesting.
    security.emit(EventType.DATA_UPDATE, context={"name": "Zoë ✓ 東京", "ratio": 0.1, "big": 1e16, "deep": {"b": [1, {"a": None}]}})
    # What orjson refuses takes Django's json.dumps: integers beyond 64 bits; Decimal through DjangoJSONEncoder.
    security.emit(EventType.DATA_UPDATE, context={"huge": 2**70, "amount": Decimal("10.10")})
    # A timestamp without microseconds is stored without a fraction.
    whole = security.build(EventType.DATA_READ)
    whole.timestamp = datetime.now(timezone.utc).replace(microsecond=0)
    dispatcher.deliver(whole)  # as journal replay and the demo's seeding deliver built events
    # bulk_create: the ORM's own encoding (a custom AUDIT_EVENT_MODEL takes this path).
    audit_model.objects.bulk_create([event_to_row(audit_model, security.build(EventType.DATA_READ, context={"é": "ü"}))])
    assert seal_pending() == 4
    report = verify_chain()
    assert report.ok, report.problem
    assert report.checked == 4


def _rewrite(column: str, value, sequence: int = 2) -> bool:
    """Store ``value`` as-is in ``column`` of row ``sequence``; False when the database refuses it."""
    try:
        sql(f"UPDATE {TABLE} SET {column} = %s WHERE chain_sequence = %s", [value, sequence])
    except DatabaseError:
        return False
    return True


def test_a_boolean_stored_as_two_is_found_where_the_column_can_hold_it(keyed, audit_model):
    for n in range(3):
        security.emit(EventType.DATA_READ, context={"n": n})
    seal_pending()
    stored = _rewrite("success", 2)
    if connection.vendor == "postgresql":
        assert not stored  # a boolean column holds true and false only
        return
    assert stored
    report = verify_chain()  # Python reads 2 as another value than the sealed True: the hash already differs
    assert (report.problem.kind, report.problem.sequence) == ("changed", 2)


def test_a_uuid_stored_with_dashes_is_found_where_the_column_is_text(keyed, audit_model):
    for n in range(3):
        security.emit(EventType.DATA_READ, context={"n": n})
    seal_pending()
    row = audit_model.objects.get(chain_sequence=2)
    dashed = str(row.event_id)
    if not _rewrite("event_id", dashed) or connection.features.has_native_uuid_field:
        # A uuid column (PostgreSQL, MariaDB 10.7+) stores the value, not the text: nothing moved.
        assert audit_model.objects.get(id=row.id).event_id == row.event_id
        assert verify_chain().ok
        return
    assert audit_model.objects.get(id=row.id).event_id == uuid.UUID(dashed)  # Python reads the same UUID
    assert not audit_model.objects.filter(id=row.id, event_id=row.event_id).exists()  # SQL's lookup misses it
    report = verify_chain()
    assert (report.problem.kind, report.problem.sequence) == ("re_encoded", 2)
    assert report.problem.detail.startswith(f"event_id is stored as '{dashed}', not in its canonical form")
