"""A change is recorded only when it commits: rolled-back transactions and savepoints record nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from rail_django.security import EventType, security
from tests.testapp.models import Invoice, Tag
from tests.tracking.conftest import context


@pytest.fixture
def invoice(trail):
    return Invoice.objects.create(number="T-1", amount=Decimal("10.00"))


def test_outer_rollback_records_nothing(trail, invoice):
    trail.mark()
    with pytest.raises(RuntimeError), transaction.atomic():
        invoice.amount = Decimal("11.00")
        invoice.save()
        Invoice.objects.create(number="T-2")
        Invoice.objects.filter(pk=invoice.pk).update(status="sent")
        Invoice.objects.bulk_create([Invoice(number="T-3")])
        invoice.tags.add(Tag.objects.create(name="x"))
        invoice.delete()
        raise RuntimeError("roll back")
    assert trail.events() == []


def test_rolled_back_savepoint_records_nothing_and_the_rest_commits(trail, invoice):
    trail.mark()
    with transaction.atomic():
        invoice.amount = Decimal("11.00")
        invoice.save()
        try:
            with transaction.atomic():  # a savepoint
                invoice.amount = Decimal("12.00")
                invoice.save()
                Invoice.objects.update(status="paid")
                raise RuntimeError("roll back the savepoint")
        except RuntimeError:
            pass
    row = trail.one()
    assert row.event_type == "data.update"
    assert context(row)["changes"]["amount"] == ["10.00", "11.00"]


def test_events_wait_for_the_commit(trail, invoice):
    trail.mark()
    with transaction.atomic():
        invoice.status = "sent"
        invoice.save()
        assert trail.events() == []  # not yet: the change may still roll back
    assert len(trail.events()) == 1


def test_committed_nested_blocks_record_each_change_once(trail, invoice):
    trail.mark()
    with transaction.atomic():
        with transaction.atomic():
            invoice.status = "sent"
            invoice.save()
        with transaction.atomic():
            invoice.status = "paid"
            invoice.save()
    assert [context(e)["changes"]["status"] for e in trail.events()] == [["draft", "sent"], ["sent", "paid"]]


def test_explicit_emit_still_survives_a_rollback(trail, invoice):
    trail.mark()
    with pytest.raises(RuntimeError), transaction.atomic():
        invoice.status = "sent"
        invoice.save()
        security.emit(EventType.DATA_EXPORT, action="exported before the failure")
        raise RuntimeError("roll back")
    assert [e.event_type for e in trail.events()] == ["data.export"]
