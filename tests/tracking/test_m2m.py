"""Many-to-many add / remove / clear / set: data.update with the ids added and removed, from either end."""

from __future__ import annotations

import pytest
from django.db import transaction

from tests.testapp.models import Invoice, InvoiceLine, Product, Tag
from tests.tracking.conftest import context, resource


@pytest.fixture
def invoice(trail):
    return Invoice.objects.create(number="M-1")


@pytest.fixture
def tags(trail):
    return [Tag.objects.create(name=f"t{n}") for n in range(3)]


def m2m(row):
    return context(row)["m2m"]


def test_add_records_the_added_ids_on_both_tracked_ends(trail, invoice, tags):
    trail.mark()
    invoice.tags.add(tags[0], tags[1])
    row = trail.one("data.update", "testapp.invoice")
    assert m2m(row) == {"tags": {"added": [str(tags[0].pk), str(tags[1].pk)], "removed": []}}
    assert resource(row) == {"type": "testapp.invoice", "id": str(invoice.pk), "name": "Invoice M-1"}
    # Tag tracks its reverse accessor "invoices" (AUDIT_TRACKED_MODELS): one event per tag.
    tag_events = trail.events("data.update", "testapp.tag")
    assert {resource(e)["id"]: m2m(e) for e in tag_events} == {
        str(tags[0].pk): {"invoices": {"added": [str(invoice.pk)], "removed": []}},
        str(tags[1].pk): {"invoices": {"added": [str(invoice.pk)], "removed": []}},
    }
    assert {resource(e)["name"] for e in tag_events} == {"t0", "t1"}


def test_adding_what_is_already_there_records_nothing(trail, invoice, tags):
    invoice.tags.add(tags[0])
    trail.mark()
    invoice.tags.add(tags[0])
    assert trail.events() == []


def test_remove_records_the_removed_ids(trail, invoice, tags):
    invoice.tags.add(*tags)
    trail.mark()
    invoice.tags.remove(tags[1])
    row = trail.one("data.update", "testapp.invoice")
    assert m2m(row) == {"tags": {"added": [], "removed": [str(tags[1].pk)]}}


def test_clear_records_every_removed_id(trail, invoice, tags):
    invoice.tags.add(*tags)
    trail.mark()
    invoice.tags.clear()
    row = trail.one("data.update", "testapp.invoice")
    assert m2m(row) == {"tags": {"added": [], "removed": [str(t.pk) for t in tags]}}
    assert len(trail.events("data.update", "testapp.tag")) == 3


def test_set_is_one_event_with_added_and_removed(trail, invoice, tags):
    invoice.tags.add(tags[0], tags[1])
    trail.mark()
    invoice.tags.set([tags[1], tags[2]])
    row = trail.one("data.update", "testapp.invoice")
    assert m2m(row) == {"tags": {"added": [str(tags[2].pk)], "removed": [str(tags[0].pk)]}}


def test_changes_made_from_the_reverse_end_are_recorded_for_the_declaring_model(trail, invoice, tags):
    other = Invoice.objects.create(number="M-2")
    trail.mark()
    tags[0].invoices.add(invoice, other)
    rows = {resource(e)["id"]: m2m(e) for e in trail.events("data.update", "testapp.invoice")}
    assert rows == {
        str(invoice.pk): {"tags": {"added": [str(tags[0].pk)], "removed": []}},
        str(other.pk): {"tags": {"added": [str(tags[0].pk)], "removed": []}},
    }
    tag_row = trail.one("data.update", "testapp.tag")
    assert m2m(tag_row) == {"invoices": {"added": [str(invoice.pk), str(other.pk)], "removed": []}}


def test_through_model_add_and_remove(trail, invoice):
    product = Product.objects.create(name="P")
    trail.mark()
    invoice.products.add(product, through_defaults={"quantity": 2})
    assert m2m(trail.one("data.update", "testapp.invoice")) == {"products": {"added": [str(product.pk)], "removed": []}}
    assert InvoiceLine.objects.get().quantity == 2
    trail.mark()
    invoice.products.remove(product)  # Django deletes the through rows: one change, not two
    assert m2m(trail.one("data.update", "testapp.invoice")) == {"products": {"added": [], "removed": [str(product.pk)]}}


def test_through_rows_written_directly_are_many_to_many_changes(trail, invoice):
    product = Product.objects.create(name="P")
    trail.mark()
    line = InvoiceLine.objects.create(invoice=invoice, product=product, quantity=5)
    assert m2m(trail.one("data.update", "testapp.invoice")) == {"products": {"added": [str(product.pk)], "removed": []}}
    trail.mark()
    line.delete()
    assert m2m(trail.one("data.update", "testapp.invoice")) == {"products": {"added": [], "removed": [str(product.pk)]}}


def test_deleting_the_object_does_not_record_its_own_relations_as_changes(trail, invoice):
    product = Product.objects.create(name="P")
    invoice.products.add(product)
    trail.mark()
    invoice.delete()
    assert [e.event_type for e in trail.events()] == ["data.delete"]


def test_set_across_a_savepoint_is_not_joined(trail, invoice, tags):
    invoice.tags.add(tags[0])
    trail.mark()
    with transaction.atomic():
        invoice.tags.remove(tags[0])
        try:
            with transaction.atomic():
                invoice.tags.add(tags[1])
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
    row = trail.one("data.update", "testapp.invoice")
    assert m2m(row) == {"tags": {"added": [], "removed": [str(tags[0].pk)]}}
    assert list(invoice.tags.all()) == []


def test_m2m_option_limits_the_fields_tracked(trail, invoice, tags, settings):
    settings.AUDIT_TRACKED_MODELS = {"testapp.Invoice": {"m2m": ["products"]}}
    trail.mark()
    invoice.tags.add(tags[0])
    assert trail.events() == []
    invoice.products.add(Product.objects.create(name="P"))
    assert list(m2m(trail.one("data.update", "testapp.invoice"))) == ["products"]
