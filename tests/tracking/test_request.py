"""Changes made by a view carry the request's actor, IP and correlation id (real test client, real views)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client

from tests.testapp.models import Customer, Invoice
from tests.tracking.conftest import context


@pytest.fixture
def invoice(trail):
    return Invoice.objects.create(number="R-1", amount=Decimal("100.00"), status="sent")


@pytest.fixture
def client_as_alice(user):
    client = Client(REMOTE_ADDR="203.0.113.9")
    client.force_login(user)
    return client


def test_view_save_records_actor_ip_and_correlation_id(trail, invoice, user, client_as_alice):
    customer = Customer.objects.create(name="New owner")
    trail.mark()
    response = client_as_alice.post(
        f"/tracking/invoices/{invoice.pk}/update/",
        {"amount": "120.00", "status": "paid", "customer": customer.pk},
        HTTP_X_REQUEST_ID="req-tracking-42",
    )
    assert response.status_code == 200
    row = trail.one("data.update")
    assert context(row)["changes"]["amount"] == ["100.00", "120.00"]
    assert context(row)["changes"]["customer"] == [None, customer.pk]
    assert (row.user_id, row.username) == (str(user.pk), "alice")
    assert row.client_ip == "203.0.113.9"
    assert row.request_path == f"/tracking/invoices/{invoice.pk}/update/"
    assert row.correlation_id == response["X-Correlation-ID"]


def test_bulk_update_in_a_view_carries_the_actor(trail, invoice, user, client_as_alice):
    trail.mark()
    response = client_as_alice.post("/tracking/invoices/pay-all/")
    assert response.json() == {"count": 1}
    row = trail.one("data.bulk")
    assert row.username == "alice"
    assert context(row)["ids"] == [str(invoice.pk)]
    assert row.correlation_id == response["X-Correlation-ID"]


def test_view_that_rolls_back_records_nothing(trail, invoice, client_as_alice):
    trail.mark()
    response = client_as_alice.post(f"/tracking/invoices/{invoice.pk}/update-then-fail/")
    assert response.status_code == 400
    assert trail.events() == []


def test_atomic_requests_record_when_the_request_commits(trail, invoice, user):
    client = Client()
    client.force_login(user)
    trail.mark()
    connection.settings_dict["ATOMIC_REQUESTS"] = True  # what Django's handler reads per request
    try:
        client.post(f"/tracking/invoices/{invoice.pk}/update/", {"amount": "1.00"})
        with pytest.raises(ValueError):  # a view that raises after its save: the request rolls back
            client.post(f"/tracking/invoices/{invoice.pk}/update/", {"amount": "2.00", "fail_after_save": "1"})
    finally:
        connection.settings_dict["ATOMIC_REQUESTS"] = False
    row = trail.one("data.update")
    assert row.username == "alice"
    assert context(row)["changes"]["amount"] == ["100.00", "1.00"]
