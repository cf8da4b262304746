"""Every code block of docs/tracking.md, run against the real test project (orders.Order -> testapp.Invoice)."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import types
from decimal import Decimal

import pytest
from django.contrib import admin
from django.test import Client, RequestFactory, override_settings

from rail_django.tracking import untrack
from rail_django.tracking.checks import check_tracked_models
from tests.docs.markdown_blocks import DOCS, block, blocks
from tests.testapp.admin import InvoiceAdmin
from tests.testapp.models import Invoice
from tests.tracking.conftest import context

PAGE = "tracking.md"
EXERCISED = [
    ("python", "AUDIT_TRACKED_MODELS = {"),
    ("python", "track(Order, exclude="),
    ("json", '"event_type": "data.update"'),
    ("python", "history_for(order)"),
    ("python", "class OrderAdmin(AuditHistoryMixin"),
    ("graphql", "query OrderHistory"),
]


def test_every_block_is_exercised():
    found = blocks(PAGE)
    assert [lang for lang, _ in found] == [lang for lang, _ in EXERCISED]
    for (_, code), (_, marker) in zip(found, EXERCISED, strict=True):
        assert marker in code, marker
    index = (DOCS / "index.md").read_text()
    assert "](tracking.md)" in index


@contextlib.contextmanager
def orders_app(order_model):
    """``from orders.models import Order`` resolves to ``order_model`` while the block runs."""
    package, module = types.ModuleType("orders"), types.ModuleType("orders.models")
    module.Order = order_model
    package.models = module
    saved = {name: sys.modules.get(name) for name in ("orders", "orders.models")}
    sys.modules.update({"orders": package, "orders.models": module})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value


def _settings_block() -> dict:
    scope: dict = {}
    exec(block(PAGE, "python", "AUDIT_TRACKED_MODELS = {"), scope)
    return scope["AUDIT_TRACKED_MODELS"]


def test_settings_block_is_valid_and_masks_and_excludes(trail):
    documented = _settings_block()
    # The page's orders.Order is the test project's Invoice (it has updated_at and card_number too).
    with override_settings(AUDIT_TRACKED_MODELS={"testapp.Invoice": documented["orders.Order"],
                                                 "auth.User": documented["auth.User"]}):
        assert check_tracked_models() == []
        invoice = Invoice.objects.create(number="D-1", card_number="4111111111111111")
        trail.mark()
        invoice.card_number = "4000000000000002"
        invoice.amount = Decimal("5.00")
        invoice.save()
        changes = context(trail.one("data.update"))["changes"]
        # Masked as the option says, or whole when "card_number" is on the redaction list too.
        assert changes.pop("card_number") in (["***REDACTED***", "***REDACTED***"], "***REDACTED***")
        assert changes == {"amount": ["0.00", "5.00"]}
    with override_settings(AUDIT_TRACKED_MODELS=documented):  # as written: only orders.Order is unknown here
        assert [e.id for e in check_tracked_models()] == ["rail_django.E071"]


def test_track_block_registers_the_model(trail):
    try:
        with override_settings(AUDIT_TRACKED_MODELS={}), orders_app(Invoice):
            exec(block(PAGE, "python", "track(Order, exclude="), {})
            invoice = Invoice.objects.create(number="D-2", card_number="4111111111111111")
            changes = context(trail.one("data.create"))["changes"]
            assert "updated_at" not in changes
            assert changes["card_number"] in ([None, "***REDACTED***"], "***REDACTED***")
            assert invoice.pk
    finally:
        untrack(Invoice)


def test_json_block_is_the_shape_of_a_stored_update(trail):
    shown = json.loads(block(PAGE, "json", '"event_type": "data.update"'))
    invoice = Invoice.objects.create(number="D-3", data={"lines": [{}, {}, {"qty": 1}]})
    invoice.amount = Decimal("120.00")
    invoice.data["lines"][2]["qty"] = 4
    invoice.save()
    row = trail.events("data.update")[-1]
    assert set(row.additional_data["resource"]) == set(shown["resource"])
    assert context(row)["changes"]["data"] == shown["context"]["changes"]["data"]
    assert context(row)["changes"]["amount"][1] == shown["context"]["changes"]["amount"][1]


def test_history_for_block_prints_the_events(trail):
    order = Invoice.objects.create(number="D-4")
    order.status = "sent"
    order.save()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(block(PAGE, "python", "history_for(order)"), {"order": order})
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "data.update" in lines[0] and "data.create" in lines[1]
    assert "'status': ['draft', 'sent']" in lines[0]


def test_admin_block_gives_the_history_page(trail, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "root-password-123")
    order = Invoice.objects.create(number="D-5")
    order.status = "paid"
    order.save()
    admin.site.unregister(Invoice)
    try:
        with orders_app(Invoice):
            scope: dict = {}
            exec(block(PAGE, "python", "class OrderAdmin(AuditHistoryMixin"), scope)
        request = RequestFactory().get(f"/admin/testapp/invoice/{order.pk}/history/")
        request.user = root
        response = admin.site._registry[Invoice].history_view(request, str(order.pk))
        page = response.render().content.decode()
        assert isinstance(admin.site._registry[Invoice], scope["OrderAdmin"])
        assert "<td>draft</td><td>paid</td>" in page
    finally:
        admin.site.unregister(Invoice)
        admin.site.register(Invoice, InvoiceAdmin)


def test_graphql_block_reads_one_objects_events(trail, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "root-password-123")
    order = Invoice.objects.create(number="D-6")
    order.status = "sent"
    order.save()
    query = block(PAGE, "graphql", "query OrderHistory").replace('"orders.order"', '"testapp.invoice"')
    client = Client()
    client.force_login(root)
    body = json.dumps({"query": query, "variables": {"id": str(order.pk)}})
    items = client.post("/graphql/", body, content_type="application/json").json()["data"]["auditEvents"]["items"]
    assert [item["eventType"] for item in items] == ["data.update", "data.create"]
    assert items[0]["username"] is None and items[0]["context"]["changes"]["status"] == ["draft", "sent"]


@pytest.mark.parametrize("check_id", ["E070", "E071", "E072", "E073", "E074"])
def test_every_check_id_is_on_the_page(check_id):
    assert f"`rail_django.{check_id}`" in (DOCS / PAGE).read_text()
