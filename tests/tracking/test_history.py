"""history_for(), the admin History page (AuditHistoryMixin) and the GraphQL resource filters."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from rail_django.tracking import history_for
from tests.testapp.models import Invoice, Tag
from tests.tracking.conftest import context


@pytest.fixture
def invoice(trail):
    invoice = Invoice.objects.create(number="H-1", amount=Decimal("100.00"))
    invoice.amount = Decimal("120.00")
    invoice.save()
    invoice.tags.add(Tag.objects.create(name="urgent"))
    Invoice.objects.filter(pk=invoice.pk).update(status="paid")
    return invoice


def test_history_for_lists_the_objects_events_newest_first(trail, invoice):
    other = Invoice.objects.create(number="H-2")
    other.amount = Decimal("1.00")
    other.save()
    rows = list(history_for(invoice))
    assert [r.event_type for r in rows] == ["data.bulk", "data.update", "data.update", "data.create"]
    assert context(rows[1])["m2m"]["tags"]["added"]  # the m2m change
    assert context(rows[2])["changes"]["amount"] == ["100.00", "120.00"]
    stamps = [(r.timestamp, r.pk) for r in rows]
    assert stamps == sorted(stamps, reverse=True)
    assert {r.additional_data["resource"].get("id") for r in rows if r.event_type != "data.bulk"} == {str(invoice.pk)}


def test_history_for_matches_whole_ids_only(trail):
    first = Invoice.objects.create(number="W-1")
    for n in range(2, 12):
        Invoice.objects.create(number=f"W-{n}")
    eleventh = Invoice.objects.get(number="W-11")
    Invoice.objects.filter(pk=eleventh.pk).update(status="sent")  # ids ["11"]: not the history of "1"
    assert [r.event_type for r in history_for(first)] == ["data.create"]
    assert [r.event_type for r in history_for(eleventh)] == ["data.bulk", "data.create"]


def test_history_of_a_deleted_object_keeps_its_events(trail, invoice):
    pk = invoice.pk
    invoice.delete()
    ghost = Invoice(pk=pk)
    assert history_for(ghost).first().event_type == "data.delete"


@pytest.fixture
def superuser_client(trail, django_user_model):
    admin_user = django_user_model.objects.create_superuser("root", "root@example.com", "root-password-123")
    client = Client()
    client.force_login(admin_user)
    return client


def history_url(invoice):
    return f"/admin/testapp/invoice/{invoice.pk}/history/"


def test_admin_history_page_shows_the_diff_table(superuser_client, invoice):
    response = superuser_client.get(history_url(invoice))
    assert response.status_code == 200
    page = response.content.decode()
    assert "History: Invoice H-1" in page
    assert "<th scope=\"row\">amount</th><td>100.00</td><td>120.00</td>" in page
    assert "added: " in page and "Bulk update of 1 row(s)" in page
    assert page.count('class="rail-history-entry"') == 4


def test_admin_history_page_escapes_values(superuser_client, trail):
    invoice = Invoice.objects.create(number="X-1")
    invoice.data = {"note": "<script>alert(1)</script>"}
    invoice.iban = "<b>x</b>"  # masked: never shown at all
    invoice.number = "<b>X</b>"
    invoice.save()
    page = superuser_client.get(history_url(invoice)).content.decode()
    assert "<script>alert(1)</script>" not in page and "<b>X</b>" not in page and "<b>x</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;X&lt;/b&gt;" in page


def test_admin_history_page_needs_the_view_permission(invoice, django_user_model):
    staff = django_user_model.objects.create_user("staffer", password="staffer-password-123", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(history_url(invoice)).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_invoice", content_type__app_label="testapp"))
    response = client.get(history_url(invoice))
    assert response.status_code == 200
    assert "<td>120.00</td>" in response.content.decode()


def test_admin_history_page_is_paginated(superuser_client, invoice, settings):
    for n in range(55):
        invoice.amount = Decimal(n)
        invoice.save()
    page_one = superuser_client.get(history_url(invoice)).content.decode()
    page_two = superuser_client.get(history_url(invoice) + "?p=2").content.decode()
    assert page_one.count('class="rail-history-entry"') == 50
    assert page_two.count('class="rail-history-entry"') == 59 - 50


RESOURCE_QUERY = """
query ($type: String, $id: String) {
  auditEvents(resourceType: $type, resourceId: $id, first: 50) {
    totalCount
    items { eventType resource { type id name } context }
  }
}
"""


def test_graphql_filters_events_by_resource(superuser_client, invoice):
    Invoice.objects.create(number="H-9").delete()
    body = json.dumps({"query": RESOURCE_QUERY, "variables": {"type": "testapp.invoice", "id": str(invoice.pk)}})
    response = superuser_client.post("/graphql/", body, content_type="application/json")
    data = response.json()["data"]["auditEvents"]
    assert data["totalCount"] == 3  # create, update, m2m update (the bulk event has no single resource)
    assert {item["resource"]["id"] for item in data["items"]} == {str(invoice.pk)}
    assert {item["eventType"] for item in data["items"]} == {"data.create", "data.update"}
    by_type = json.dumps({"query": RESOURCE_QUERY, "variables": {"type": "testapp.invoice"}})
    everything = superuser_client.post("/graphql/", by_type, content_type="application/json").json()
    assert everything["data"]["auditEvents"]["totalCount"] == 6  # + the bulk event, H-9 created and deleted
