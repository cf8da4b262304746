"""How the middleware finds an operation's end: the fast path for nested fields, and its fallbacks."""

from __future__ import annotations

import gc

import pytest
from django.test import RequestFactory

from rail_django.capture.graphql import GraphQLAuditMiddleware, middleware, mutation_event_type
from rail_django.conf import get_graphql_config
from tests.testapp.schema import schema

pytestmark = pytest.mark.django_db(transaction=True)


def test_nested_fields_never_reach_the_root_field_code(graphql, audit_model, rail_graphql, monkeypatch):
    rail_graphql(audited_query_fields=["catalog"])
    calls = []
    real = middleware._resolve_root
    monkeypatch.setattr(middleware, "_resolve_root", lambda *a: calls.append(a[2].field_name) or real(*a))

    status, body = graphql("{ catalog(size: 50) { id name sku price inStock parts { id name } } ping }")

    assert len(body["data"]["catalog"]) == 50  # 50 x (5 + 3 x 2) nested fields resolved...
    assert calls == ["catalog", "ping"]  # ...and only the two root fields went past `info.path.prev`
    assert audit_model.objects.count() == 1


def test_without_an_execution_context_the_last_root_resolver_ends_the_operation(graphql, audit_model, monkeypatch):
    monkeypatch.setattr(middleware, "_execution_context", lambda: None)

    graphql('mutation Two { createGroup(name: "a") { ok } again: createGroup(name: "") { ok } }')

    [event] = audit_model.objects.all()
    assert event.outcome == "failure"
    assert event.additional_data["context"]["root_fields"] == ["createGroup", "createGroup"]


class FailsAfterTheAuditMiddleware:
    """An outer middleware raising after the audit middleware returned: the field never completes."""

    def resolve(self, next, root, info, **args):
        result = next(root, info, **args)
        if info.path.prev is None:
            raise RuntimeError("outer middleware refused")
        return result


def test_an_operation_that_never_completes_is_still_recorded(audit_model, user):
    request = RequestFactory().post("/graphql/")
    request.user = user

    result = schema.execute(
        'mutation { createGroup(name: "x") { ok } }',
        context_value=request,
        middleware=[GraphQLAuditMiddleware(), FailsAfterTheAuditMiddleware()],
    )
    del result
    gc.collect()  # the execution context is released with the error that references it

    [event] = audit_model.objects.all()
    assert event.event_type == "data.create" and event.username == "alice"


@pytest.mark.parametrize(
    ("name", "event_type"),
    [
        ("createOrder", "data.create"), ("addTag", "data.create"), ("add", "data.create"),
        ("addressUpdate", "data.update"),  # "address" is not "add"
        ("updateOrder", "data.update"), ("setPassword", "data.update"), ("editNote", "data.update"),
        ("deleteOrder", "data.delete"), ("removeMember", "data.delete"), ("delete_order", "data.delete"),
        ("bulkDeleteOrders", "data.bulk"), ("CreateOrder", "data.create"),
        ("approveOrder", "data.update"), ("settleInvoice", "data.update"), ("created", "data.update"),
    ],
)
def test_prefix_rule_reads_the_first_word(name, event_type):
    assert mutation_event_type(name, get_graphql_config()) == event_type


def test_a_failure_inside_the_audit_never_fails_the_request(graphql, audit_model, monkeypatch, caplog):
    from rail_django.capture.graphql import operation

    def broken(*args, **kwargs):
        raise RuntimeError("audit bug")

    monkeypatch.setattr(operation.OperationAudit, "begin", broken)

    status, body = graphql('mutation { createGroup(name: "still works") { ok } }')

    assert status == 200 and body == {"data": {"createGroup": {"ok": True}}}
    assert audit_model.objects.count() == 0
    assert "GraphQL audit bookkeeping failed" in caplog.text
