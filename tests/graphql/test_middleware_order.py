"""The project's other middleware sees every field, in the same order, with or without the audit middleware."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from graphene_django.debug import DjangoDebugMiddleware

from rail_django.security import security
from rail_django.security.graphql import GraphQLAuditMiddleware, audited_execute, audited_execute_async
from tests.graphql import probe
from tests.graphql.urls import chain

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.graphql.urls")]

QUERY = "query Probe { parts(size: 4) { id label broken } ping }"
MUTATION = "mutation Touch { first: touch { ok parts { id label } } second: touch(fail: true) { ok } }"


@pytest.fixture(autouse=True)
def _clear_calls():
    probe.CALLS.clear()
    yield
    probe.CALLS.clear()


def calls_through(client, path: str, query: str) -> tuple[dict, list]:
    probe.CALLS.clear()
    response = client.post(path, json.dumps({"query": query}), content_type="application/json")
    return response.json(), list(probe.CALLS)


@pytest.mark.parametrize("path", ["/stock/", "/audited/"])
@pytest.mark.parametrize("audited", [False, True], ids=["query-not-audited", "query-audited"])
@pytest.mark.parametrize("query", [QUERY, MUTATION], ids=["query", "mutation"])
def test_other_middleware_sees_every_field_in_the_same_order(client, audit_model, rail_graphql, path, audited, query):
    rail_graphql(audited_query_fields=["parts"] if audited else [])

    reference_body, reference = calls_through(client, "/reference/", query)
    body, seen = calls_through(client, path, query)

    assert body == reference_body
    assert seen == reference  # every field, outer before inner, in graphql-core's order
    assert ("inner", ("parts", 3, "broken")) in seen or ("inner", ("first", "parts", 1, "label")) in seen
    recorded = query is MUTATION or audited
    assert audit_model.objects.count() == (1 if recorded else 0)


def _request():
    request = RequestFactory().post("/graphql/")
    request.user = AnonymousUser()
    return request


@pytest.mark.parametrize("runner", ["audited_execute_async", "execute_async_with_middleware"])
def test_async_resolvers_keep_the_order_and_record_one_event(audit_model, rail_graphql, runner):
    rail_graphql(audited_query_fields=["asyncParts"])
    query = "query Async { asyncParts(size: 3) { id label } ping }"

    probe.CALLS.clear()
    reference = asyncio.run(probe.schema.execute_async(query, context_value=_request(), middleware=chain(False)))
    expected = list(probe.CALLS)
    probe.CALLS.clear()
    if runner == "audited_execute_async":
        result = asyncio.run(audited_execute_async(probe.schema, query, context_value=_request(), middleware=chain(False)))
    else:
        result = asyncio.run(probe.schema.execute_async(query, context_value=_request(), middleware=chain(True)))

    assert result.data == reference.data and result.data["asyncParts"][2] == {"id": 2, "label": "part 2"}
    assert sorted(probe.CALLS) == sorted(expected)  # async fields interleave; each is seen by both, once
    security.flush(timeout=30)  # on an event loop, events are always queued
    [event] = audit_model.objects.all()
    assert event.event_type == "data.read" and event.outcome == "success"
    assert event.additional_data["context"]["root_fields"] == ["asyncParts", "ping"]


def test_async_mutation_root_fields_run_serially_and_record_one_event(audit_model):
    result = asyncio.run(probe.schema.execute_async(
        "mutation Two { a: asyncTouch { ok } b: touch { ok } c: asyncTouch { ok } }",
        context_value=_request(), middleware=[GraphQLAuditMiddleware()],
    ))

    assert not result.errors and result.data == {"a": {"ok": True}, "b": {"ok": True}, "c": {"ok": True}}
    security.flush(timeout=30)
    [event] = audit_model.objects.all()
    assert event.outcome == "success"
    assert event.additional_data["context"]["root_fields"] == ["asyncTouch", "touch", "asyncTouch"]


@pytest.mark.parametrize("audit_first", [True, False])
def test_django_debug_middleware_still_sees_nested_errors(audit_model, rail_graphql, audit_first):
    rail_graphql(audited_query_fields=["parts"])
    middleware = [GraphQLAuditMiddleware(), DjangoDebugMiddleware()]
    if not audit_first:
        middleware.reverse()
    request = _request()

    try:
        result = audited_execute(probe.schema, "{ parts(size: 2) { id broken } }", context_value=request,
                                 middleware=middleware)
        exceptions = request.django_debug.object.exceptions  # DjangoDebugMiddleware saw both nested errors
        assert len(exceptions) == 2 and "part 1 is broken" in exceptions[-1].message
    finally:
        request.django_debug.disable_instrumentation()
    assert len(result.errors) == 2
    [event] = audit_model.objects.all()
    assert event.outcome == "failure" and event.additional_data["context"]["errors"] == [
        "part 0 is broken", "part 1 is broken",
    ]
