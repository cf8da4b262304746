"""save() and delete() of tracked models: one data.create / data.update / data.delete per row, with field diffs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from tests.testapp.models import Customer, Invoice, Memo, PaidInvoice, Product
from tests.tracking.conftest import context, resource

MASK = "***REDACTED***"


@pytest.fixture
def customer(trail):
    return Customer.objects.create(name="ACME")


@pytest.fixture
def invoice(trail, customer):
    return Invoice.objects.create(number="INV-1", customer=customer, amount=Decimal("100.00"), data={"lines": [1]})


def test_create_records_every_tracked_field_with_none_before(trail, customer):
    trail.mark()
    due = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.timezone.utc)
    invoice = Invoice.objects.create(number="INV-7", customer=customer, amount=Decimal("12.50"), due_at=due)

    row = trail.one("data.create")
    changes = context(row)["changes"]
    assert changes["number"] == [None, "INV-7"]
    assert changes["amount"] == [None, "12.50"]  # Decimal as a string
    assert changes["customer"] == [None, customer.pk]  # a foreign key as its raw id
    assert changes["due_at"] == [None, "2025-03-01T09:30:00+00:00"]  # ISO 8601
    assert changes["id"] == [None, invoice.pk]
    assert "notes" not in changes  # excluded in AUDIT_TRACKED_MODELS
    assert resource(row) == {"type": "testapp.invoice", "id": str(invoice.pk), "name": "Invoice INV-7"}


def test_update_records_only_the_changed_fields_old_and_new(trail, invoice):
    loaded = Invoice.objects.get(pk=invoice.pk)
    trail.mark()
    loaded.amount = Decimal("120.00")
    loaded.status = Invoice.SENT
    loaded.save()

    row = trail.one("data.update")
    changes = context(row)["changes"]
    assert changes.pop("amount") == ["100.00", "120.00"]
    assert changes.pop("status") == ["draft", "sent"]
    assert set(changes) == {"updated_at"}  # auto_now moved with the real change
    assert resource(row)["id"] == str(invoice.pk)


def test_update_of_an_instance_loaded_from_the_database_makes_no_extra_query(trail, invoice):
    loaded = Invoice.objects.get(pk=invoice.pk)
    loaded.amount = Decimal("5.00")
    with CaptureQueriesContext(connection) as queries:
        loaded.save()
    # The UPDATE itself, nothing else on the invoice table: old values come from the state as loaded
    # (the other statement is the audit row, written before save() returns in these tests).
    invoice_sql = [q["sql"] for q in queries.captured_queries if "testapp_invoice" in q["sql"]]
    assert len(invoice_sql) == 1 and invoice_sql[0].startswith("UPDATE"), invoice_sql
    assert context(trail.one("data.update"))["changes"]["amount"] == ["100.00", "5.00"]


def test_a_save_that_changes_nothing_records_nothing(trail, invoice):
    loaded = Invoice.objects.get(pk=invoice.pk)
    trail.mark()
    loaded.save()  # auto_now moves updated_at, which alone is not a change
    loaded.amount = "100.00"  # same amount, as text
    loaded.save()
    loaded.notes = "excluded field only"
    loaded.save()
    assert trail.events() == []


def test_values_assigned_in_another_type_compare_by_value(trail, invoice):
    invoice.amount = 100  # the int 100 is the stored 100.00
    invoice.customer_id = str(invoice.customer_id)
    trail.mark()
    invoice.save()
    assert trail.events() == []


def test_masked_and_redaction_list_fields_never_show_their_values(trail, invoice):
    trail.mark()
    invoice.iban = "DE89370400440532013000"
    invoice.api_key = "sk_live_secret"
    invoice.save()
    changes = context(trail.one("data.update"))["changes"]
    assert changes["iban"] == [MASK, MASK]  # listed in "mask": recorded as changed, values hidden
    assert changes["api_key"] == MASK  # matches AUDIT_REDACTION_FIELDS ("key"): masked without being listed
    stored = str(trail.one("data.update").additional_data)
    assert "DE89370400440532013000" not in stored and "sk_live_secret" not in stored


def test_json_field_diff_lists_json_pointer_paths(trail, invoice):
    invoice.data = {"lines": [1], "meta": {"a/b": 1, "keep": True}}
    invoice.save()
    loaded = Invoice.objects.get(pk=invoice.pk)
    trail.mark()
    loaded.data["lines"].append(2)
    loaded.data["meta"]["a/b"] = 2
    del loaded.data["meta"]["keep"]
    loaded.data["new"] = None
    loaded.save()
    assert context(trail.one("data.update"))["changes"]["data"] == {
        "/lines/1": [None, 2],
        "/meta/a~1b": [1, 2],
        "/meta/keep": [True, None],
        "/new": [None, None],
    }


def test_json_field_tells_one_from_true(trail, invoice):
    invoice.data = {"flag": 1}
    invoice.save()
    trail.mark()
    invoice.data = {"flag": True}
    invoice.save()
    assert context(trail.one("data.update"))["changes"]["data"] == {"/flag": [1, True]}


def test_file_field_is_recorded_by_name(trail, invoice, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    trail.mark()
    invoice.attachment.save("scan.pdf", ContentFile(b"%PDF-1.4"), save=True)
    changes = context(trail.one("data.update"))["changes"]
    assert changes["attachment"] == ["", "invoices/scan.pdf"]


def test_uuid_primary_key_is_the_resource_id(trail):
    product = Product.objects.create(name="Widget", price=Decimal("3.10"))
    row = trail.one("data.create")
    assert resource(row)["id"] == str(product.pk)
    assert context(row)["changes"]["id"] == [None, str(product.pk)]
    trail.mark()
    product.price = Decimal("3.20")
    product.save()
    assert context(trail.one("data.update"))["changes"] == {"price": ["3.10", "3.20"]}


def test_instance_built_by_hand_with_an_existing_key_reads_the_row_once(trail, invoice):
    trail.mark()
    copy = Invoice(pk=invoice.pk, number="INV-1", customer_id=invoice.customer_id, amount=Decimal("7.00"),
                   data={"lines": [1]}, status="draft")
    copy.save()
    changes = context(trail.one("data.update"))["changes"]
    assert changes["amount"] == ["100.00", "7.00"]
    assert "number" not in changes and "status" not in changes


def test_deferred_field_loaded_later_is_compared_with_the_database(trail, invoice):
    partial = Invoice.objects.only("id", "number").get(pk=invoice.pk)
    partial.amount = Decimal("1.00")  # never loaded: its old value is read when saving
    trail.mark()
    partial.save(update_fields=["amount"])
    assert context(trail.one("data.update"))["changes"] == {"amount": ["100.00", "1.00"]}


def test_update_fields_limits_the_diff_to_the_fields_saved(trail, invoice):
    invoice.status = Invoice.PAID
    invoice.amount = Decimal("1.00")
    trail.mark()
    invoice.save(update_fields=["status"])
    assert context(trail.one("data.update"))["changes"] == {"status": ["draft", "paid"]}


def test_expression_saved_records_the_value_the_database_computed(trail, invoice):
    invoice.amount = F("amount") + 1
    trail.mark()
    invoice.save(update_fields=["amount"])
    assert context(trail.one("data.update"))["changes"]["amount"] == ["100.00", "101.00"]


def test_delete_records_the_loaded_values(trail, invoice):
    loaded = Invoice.objects.get(pk=invoice.pk)
    pk = loaded.pk
    trail.mark()
    loaded.delete()
    row = trail.one("data.delete")
    changes = context(row)["changes"]
    assert changes["amount"] == ["100.00", None]
    assert changes["number"] == ["INV-1", None]
    assert resource(row) == {"type": "testapp.invoice", "id": str(pk), "name": "Invoice INV-1"}


def test_queryset_delete_records_one_event_per_row(trail, customer):
    for n in range(3):
        Invoice.objects.create(number=f"D-{n}", customer=customer)
    trail.mark()
    assert Invoice.objects.filter(number__startswith="D-").delete()[0] == 3
    deleted = trail.events("data.delete")
    assert sorted(context(e)["changes"]["number"][0] for e in deleted) == ["D-0", "D-1", "D-2"]


def test_cascade_delete_records_the_dependent_rows(trail, customer):
    product = Product.objects.create(name="Gone")
    invoice = Invoice.objects.create(number="C-1", customer=customer)
    invoice.products.add(product)
    product_id = str(product.pk)
    trail.mark()
    product.delete()
    assert resource(trail.one("data.delete"))["id"] == product_id
    # The invoice lost a product: a many-to-many change of a surviving object.
    update = trail.one("data.update")
    assert resource(update)["id"] == str(invoice.pk)
    assert context(update)["m2m"] == {"products": {"added": [], "removed": [product_id]}}


def test_untracked_model_records_nothing(trail):
    memo = Memo.objects.create(text="a")
    memo.text = "b"
    memo.save()
    Memo.objects.update(text="c")
    Memo.objects.bulk_create([Memo(text="d")])
    memo.delete()
    assert trail.events() == []


def test_user_password_hash_is_always_masked(trail, settings, django_user_model):
    settings.AUDIT_TRACKED_MODELS = {**settings.AUDIT_TRACKED_MODELS, "auth.User": {}}
    settings.AUDIT_REDACTION_FIELDS = ["ssn"]  # "password" no longer on the redaction list
    user = django_user_model.objects.create_user("bob", password="first-password-1")
    trail.mark()
    user.set_password("second-password-2")
    user.save()
    row = trail.one("data.update", "auth.user")
    assert context(row)["changes"]["password"] == [MASK, MASK]
    assert "pbkdf2" not in str(row.additional_data) and "md5$" not in str(row.additional_data)


def test_proxy_writes_are_recorded_as_the_concrete_model(trail, invoice):
    paid = PaidInvoice.objects.get(pk=invoice.pk)
    trail.mark()
    paid.status = Invoice.PAID
    paid.save()
    row = trail.one("data.update")
    assert resource(row)["type"] == "testapp.invoice"
    assert context(row)["changes"]["status"] == ["draft", "paid"]
