"""QuerySet.update(), bulk_update() and bulk_create() of tracked models: one data.bulk event each."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import F

from tests.testapp.models import Customer, Invoice, Product, Tag
from tests.tracking.conftest import context, resource

MASK = "***REDACTED***"


@pytest.fixture
def invoices(trail):
    Invoice.objects.bulk_create([Invoice(number=f"B-{n:04d}", amount=Decimal(n)) for n in range(5)])
    return list(Invoice.objects.order_by("pk"))


def ids(rows):
    return [str(r.pk) for r in rows]


def test_queryset_update_records_count_ids_and_new_values(trail, invoices):
    trail.mark()
    count = Invoice.objects.filter(amount__gte=2).update(status="paid", due_at=None, iban="DE89")
    assert count == 3
    row = trail.one("data.bulk")
    ctx = context(row)
    assert ctx["operation"] == "update" and ctx["model"] == "testapp.Invoice"
    assert ctx["count"] == 3
    assert sorted(ctx["ids"], key=int) == ids(invoices[2:])
    assert ctx["changes"] == {"status": "paid", "due_at": None, "iban": MASK}
    assert resource(row)["type"] == "testapp.invoice"
    assert row.severity == "warning"


def test_update_with_an_expression_lists_the_values_written(trail, invoices):
    trail.mark()
    Invoice.objects.filter(pk__in=[invoices[0].pk, invoices[1].pk]).update(amount=F("amount") + 10)
    ctx = context(trail.one("data.bulk"))
    assert ctx["changes"] == {}
    assert ctx["rows"] == {str(invoices[0].pk): {"amount": "10.00"}, str(invoices[1].pk): {"amount": "11.00"}}


def test_update_filtered_across_a_relation(trail, invoices):
    acme = Customer.objects.create(name="ACME")
    Invoice.objects.filter(pk=invoices[3].pk).update(customer=acme)
    trail.mark()
    Invoice.objects.filter(customer__name="ACME").update(status="sent")
    ctx = context(trail.one("data.bulk"))
    assert (ctx["count"], ctx["ids"]) == (1, [str(invoices[3].pk)])


def test_count_is_exact_beyond_the_thousand_ids_listed(trail):
    Invoice.objects.bulk_create([Invoice(number=f"L-{n:05d}") for n in range(1205)])
    trail.mark()
    assert Invoice.objects.update(status="sent") == 1205
    ctx = context(trail.one("data.bulk"))
    assert ctx["count"] == 1205
    assert len(ctx["ids"]) == 1000 and len(set(ctx["ids"])) == 1000


def test_update_that_matches_nothing_or_only_excluded_fields_records_nothing(trail, invoices):
    trail.mark()
    assert Invoice.objects.filter(number="none").update(status="paid") == 0
    Invoice.objects.update(notes="excluded field")
    assert trail.events() == []


def test_update_through_another_manager_is_seen(trail, invoices):
    trail.mark()
    Invoice._base_manager.filter(pk=invoices[0].pk).update(status="sent")
    assert context(trail.one("data.bulk"))["ids"] == [str(invoices[0].pk)]


def test_bulk_update_is_one_event_across_its_batches(trail, invoices):
    for n, invoice in enumerate(invoices):
        invoice.amount = Decimal(100 + n)
    trail.mark()
    Invoice.objects.bulk_update(invoices, ["amount"], batch_size=2)  # three UPDATE statements
    ctx = context(trail.one("data.bulk"))
    assert ctx["count"] == 5
    assert sorted(ctx["ids"], key=int) == ids(invoices)
    assert ctx["rows"][str(invoices[4].pk)] == {"amount": "104.00"}


def test_two_update_calls_are_two_events(trail, invoices):
    trail.mark()
    with transaction.atomic():
        Invoice.objects.filter(pk=invoices[0].pk).update(status="sent")
        Invoice.objects.filter(pk=invoices[1].pk).update(status="sent")
    assert [context(e)["ids"] for e in trail.events()] == [[str(invoices[0].pk)], [str(invoices[1].pk)]]


def test_bulk_create_with_auto_keys_lists_the_new_ids_and_rows(trail):
    trail.mark()
    created = Invoice.objects.bulk_create([Invoice(number=f"N-{n}", amount=Decimal("1.50")) for n in range(3)])
    row = trail.one("data.bulk")
    ctx = context(row)
    assert ctx["operation"] == "create" and ctx["count"] == 3
    assert ctx["ids"] == ids(created)
    assert ctx["rows"][str(created[0].pk)]["number"] == "N-0"
    assert ctx["rows"][str(created[0].pk)]["amount"] == "1.50"


def test_bulk_create_with_uuid_keys(trail):
    trail.mark()
    created = Product.objects.bulk_create([Product(name=f"P{n}") for n in range(2)])
    assert context(trail.one("data.bulk"))["ids"] == [str(p.pk) for p in created]


def test_update_of_uuid_keys_lists_them_with_dashes(trail):
    # Integer keys are joined into one text value by the database (SQLite, PostgreSQL); other keys
    # are read row by row and written as str(pk): both must list every row the statement changes.
    created = Product.objects.bulk_create([Product(name=f"U{n}") for n in range(3)])
    trail.mark()
    assert Product.objects.filter(name__in=["U0", "U2"]).update(name="renamed") == 2
    ctx = context(trail.one("data.bulk"))
    assert sorted(ctx["ids"]) == sorted(str(p.pk) for p in (created[0], created[2]))


def test_ids_of_an_integer_key_come_back_joined_in_one_value_on_sqlite_and_postgresql(trail, invoices):
    # The ids are read before the UPDATE; on SQLite and PostgreSQL the database joins them into
    # one text value (group_concat / string_agg); MySQL's GROUP_CONCAT is cut at 1,024 bytes, so
    # there they come back a row each.
    from django.test.utils import CaptureQueriesContext

    trail.mark()
    with CaptureQueriesContext(connection) as queries:
        Invoice.objects.filter(amount__gte=1).update(status="sent")
    [read] = [q["sql"] for q in queries.captured_queries if q["sql"].upper().startswith("SELECT")]
    joined = "GROUP_CONCAT(" in read.upper() or "STRING_AGG(" in read.upper()
    assert joined == (connection.vendor in ("sqlite", "postgresql"))
    assert sorted(context(trail.one("data.bulk"))["ids"], key=int) == ids(invoices[1:])


def test_bulk_create_in_batches_is_one_event(trail):
    trail.mark()
    created = Invoice.objects.bulk_create([Invoice(number=f"Q-{n}") for n in range(7)], batch_size=3)
    ctx = context(trail.one("data.bulk"))
    assert ctx["count"] == 7 and ctx["ids"] == ids(created)


def test_bulk_create_ignoring_conflicts_counts_only_the_rows_inserted(trail):
    Tag.objects.create(name="dup")
    trail.mark()
    Tag.objects.bulk_create([Tag(name="dup"), Tag(name="fresh")], ignore_conflicts=True)
    ctx = context(trail.one("data.bulk"))
    assert ctx["count"] == 1
    assert ctx["on_conflict"] == "ignore"


def test_raw_sql_through_django_connection_is_counted(trail, invoices):
    table = connection.ops.quote_name(Invoice._meta.db_table)
    trail.mark()
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Invoice._meta.db_table} SET status = %s WHERE amount >= %s", ["sent", 3])
        cursor.execute(f"UPDATE {table} SET {connection.ops.quote_name('status')} = %s", ["paid"])
    raw, orm_shaped = trail.events("data.bulk")
    assert (context(raw)["count"], context(raw)["ids_known"], context(raw)["ids"]) == (2, False, [])
    assert context(orm_shaped)["count"] == 5 and context(orm_shaped)["ids_known"] is True


def test_a_failing_bulk_statement_raises_as_before_and_records_nothing(trail, invoices):
    trail.mark()
    with pytest.raises(Exception), transaction.atomic():  # noqa: B017 (the backend's IntegrityError)
        Invoice.objects.filter(pk=invoices[1].pk).update(number=invoices[0].number)
    assert trail.events() == []
    assert Invoice.objects.get(pk=invoices[1].pk).number == "B-0001"


def test_save_statements_are_not_mistaken_for_bulk_writes(trail, invoices):
    trail.mark()
    invoices[0].status = "sent"
    invoices[0].save()
    Invoice.objects.create(number="S-1")
    assert sorted(e.event_type for e in trail.events()) == ["data.create", "data.update"]


def test_constant_values_of_every_kind_are_json(trail, invoices):
    import datetime as dt

    acme = Customer.objects.create(name="ACME")
    due = dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.timezone.utc)
    trail.mark()
    Invoice.objects.filter(pk=invoices[0].pk).update(
        due_at=due, data={"k": [1, {"x": None}]}, amount=Decimal("7.10"), customer=acme, status="sent")
    assert context(trail.one("data.bulk"))["changes"] == {
        "due_at": "2025-06-01T08:00:00+00:00",
        "data": {"k": [1, {"x": None}]},
        "amount": "7.10",
        "customer": acme.pk,
        "status": "sent",
    }
