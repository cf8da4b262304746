"""Which fields go through which middleware: the audit middleware on root fields only, the others on every field."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import graphene
import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from graphene_django.debug import DjangoDebugMiddleware
from graphql.execution.middleware import MiddlewareManager

from rail_django.capture.graphql import GraphQLAuditMiddleware, middleware, operation
from tests.testapp.schema import schema

pytestmark = pytest.mark.django_db(transaction=True)

CATALOG = "{ catalog(size: %d) { id name sku price inStock parts { id name } } ping }"


def catalog_fields(size: int) -> int:
    """Fields resolved by CATALOG: per product 5 scalars, ``parts`` and 3 x 2 part fields; plus the 2 root fields."""
    return size * (5 + 1 + 3 * 2) + 2


@pytest.fixture
def calls(monkeypatch):
    """Every call into ``GraphQLAuditMiddleware.resolve``, as ``("audit", path)``, in call order."""
    seen: list[tuple[str, tuple[Any, ...]]] = []
    real = GraphQLAuditMiddleware.resolve

    def counting(self, next, root, info, **args):  # noqa: A002
        seen.append(("audit", tuple(info.path.as_list())))
        return real(self, next, root, info, **args)

    monkeypatch.setattr(GraphQLAuditMiddleware, "resolve", counting)
    return seen


class Recording:
    """A project's middleware: records every field it sees, in the shared ``calls`` list."""

    def __init__(self, name: str, calls: list[tuple[str, tuple[Any, ...]]]) -> None:
        self.name, self.calls = name, calls

    def resolve(self, next, root, info, **args):  # noqa: A002
        self.calls.append((self.name, tuple(info.path.as_list())))
        return next(root, info, **args)


def _request(user=None):
    request = RequestFactory().post("/graphql/")
    request.user = user or AnonymousUser()
    return request


def _per_field(calls):
    """path -> the middleware that saw it, in call order (the outermost first)."""
    fields: dict[tuple[Any, ...], list[str]] = {}
    for name, path in calls:
        fields.setdefault(path, []).append(name)
    return fields


@pytest.mark.parametrize("path", ["/graphql/", "/graphql/audited/"])  # stock GraphQLView and AuditGraphQLView
@pytest.mark.parametrize("audited", [False, True])
def test_only_root_fields_reach_the_audit_middleware(graphql, audit_model, rail_graphql, calls, path, audited):
    rail_graphql(audited_query_fields=["catalog"] if audited else [])

    status, body = graphql(CATALOG % 50, path=path)

    assert status == 200 and len(body["data"]["catalog"]) == 50 and body["data"]["catalog"][49]["parts"][2]["id"] == 492
    # Before, all 602 fields went through it. An audited operation needs its root fields; one that is not
    # audited is known as such at its first root field, and nothing after that goes through it.
    assert calls == ([("audit", ("catalog",)), ("audit", ("ping",))] if audited else [("audit", ("catalog",))])
    assert audit_model.objects.count() == (1 if audited else 0)


def test_a_mutation_payload_is_not_routed_through_the_audit_middleware(graphql, audit_model, calls):
    status, body = graphql(
        'mutation { first: createGroup(name: "a") { ok group { id name } } second: createGroup(name: "") { ok error } }'
    )

    assert status == 200 and body["data"]["first"]["group"]["name"] == "a"
    assert calls == [("audit", ("first",)), ("audit", ("second",))]
    [event] = audit_model.objects.all()
    assert event.event_type == "data.create" and event.outcome == "failure"  # the second payload says ok: false
    assert event.additional_data["context"]["errors"] == ["name must not be empty"]


@pytest.mark.parametrize("audited", [False, True])
def test_other_middleware_still_sees_every_field_in_its_place(audit_model, rail_graphql, calls, audited):
    rail_graphql(audited_query_fields=["catalog"] if audited else [])
    chain = [Recording("inner", calls), GraphQLAuditMiddleware(), Recording("outer", calls)]

    result = schema.execute(CATALOG % 5, context_value=_request(), middleware=chain)

    assert not result.errors and len(result.data["catalog"]) == 5
    fields = _per_field(calls)
    assert len(fields) == catalog_fields(5)
    # graphql-core calls the last middleware of the list first: the order is kept with the audit one taken out.
    assert fields.pop(("catalog",)) == ["outer", "audit", "inner"]
    assert fields.pop(("ping",)) == (["outer", "audit", "inner"] if audited else ["outer", "inner"])
    assert all(seen == ["outer", "inner"] for seen in fields.values()), fields
    assert audit_model.objects.count() == (1 if audited else 0)


@pytest.mark.parametrize("audit_first", [True, False])
def test_django_debug_middleware_still_sees_nested_fields(audit_model, rail_graphql, calls, audit_first):
    rail_graphql(audited_query_fields=["catalog"])
    chain = [GraphQLAuditMiddleware(), DjangoDebugMiddleware()]
    if not audit_first:
        chain.reverse()
    request = _request()

    try:
        schema.execute("{ catalog(size: 2) { id parts { broken } } }", context_value=request, middleware=chain)
        # DjangoDebugMiddleware catches the error of every nested ``broken`` field (2 products x 3 parts).
        exceptions = request.django_debug.object.exceptions
        assert len(exceptions) == 6 and "part 12 is broken" in exceptions[-1].message
    finally:
        request.django_debug.disable_instrumentation()
    assert calls == [("audit", ("catalog",))]
    [event] = audit_model.objects.all()
    assert event.event_type == "data.read" and event.outcome == "failure"


class AsyncItem(graphene.ObjectType):
    id = graphene.Int()
    label = graphene.String()

    @staticmethod
    async def resolve_label(item, info):
        await asyncio.sleep(0)
        return f"item {item.id}"


class AsyncQuery(graphene.ObjectType):
    items = graphene.List(AsyncItem, size=graphene.Int(default_value=3))
    ping = graphene.String()

    @staticmethod
    async def resolve_items(root, info, size):
        await asyncio.sleep(0)
        return [AsyncItem(id=i) for i in range(size)]

    @staticmethod
    def resolve_ping(root, info):
        return "pong"


async_schema = graphene.Schema(query=AsyncQuery)


@pytest.mark.parametrize("audited", [False, True])
def test_async_execution_keeps_the_audit_on_root_fields_only(rail_graphql, calls, monkeypatch, audited):
    rail_graphql(audited_query_fields=["items"] if audited else [])
    emitted = []
    monkeypatch.setattr(operation.security, "emit", lambda event_type, **kw: emitted.append((event_type, kw)))
    chain = [Recording("inner", calls), GraphQLAuditMiddleware(), Recording("outer", calls)]

    result = asyncio.run(
        async_schema.execute_async("{ items(size: 4) { id label } ping }", context_value=_request(), middleware=chain)
    )

    assert not result.errors and result.data["items"][3] == {"id": 3, "label": "item 3"}
    fields = _per_field(calls)
    assert len(fields) == 4 * 2 + 2
    assert fields.pop(("items",)) == ["outer", "audit", "inner"]
    assert fields.pop(("ping",)) == (["outer", "audit", "inner"] if audited else ["outer", "inner"])
    assert all(seen == ["outer", "inner"] for seen in fields.values()), fields
    if audited:
        [(event_type, event)] = emitted
        assert event_type == "data.read" and event["outcome"] == "success"
        assert event["context"]["root_fields"] == ["items", "ping"]
    else:
        assert emitted == []


class Viewer(graphene.ObjectType):
    """A root type reachable below itself (Relay's ``viewer``): its resolvers run at the root and nested."""

    name = graphene.String()
    viewer = graphene.Field(lambda: Viewer)

    @staticmethod
    def resolve_name(root, info):
        if info.path.prev is not None and info.path.prev.key == "viewer":
            raise ValueError("nested name refused")
        return "root"

    @staticmethod
    def resolve_viewer(root, info):
        return {}


viewer_schema = graphene.Schema(query=Viewer)


def test_a_resolver_shared_by_root_and_nested_fields_is_audited_at_the_root_only(audit_model, rail_graphql, calls):
    rail_graphql(audited_query_fields=["viewer"])

    result = viewer_schema.execute(
        "{ viewer { viewer { name } } name }", context_value=_request(), middleware=[GraphQLAuditMiddleware()]
    )

    assert result.data == {"viewer": {"viewer": {"name": None}}, "name": "root"}
    # The nested ``viewer`` and ``name`` share the root fields' resolvers: they pass through, unrecorded.
    assert [path for _, path in calls] == [("viewer",), ("viewer", "viewer"), ("viewer", "viewer", "name"), ("name",)]
    [event] = audit_model.objects.all()
    assert event.outcome == "failure" and event.additional_data["context"]["errors"] == ["nested name refused"]
    assert event.additional_data["context"]["root_fields"] == ["viewer", "name"]


def test_introspection_root_fields_still_count_towards_the_operation(audit_model, rail_graphql, calls):
    rail_graphql(audited_query_fields=["ping"])

    result = schema.execute(
        "{ __typename ping t: __typename }", context_value=_request(), middleware=[GraphQLAuditMiddleware()]
    )

    assert result.data == {"__typename": "Query", "ping": "pong", "t": "Query"}
    assert [path for _, path in calls] == [("__typename",), ("ping",), ("t",)]
    [event] = audit_model.objects.all()
    assert event.outcome == "success" and "not_executed" not in event.additional_data["context"]


class ProjectManager(MiddlewareManager):
    """A project's own middleware manager: left as it is."""


def test_a_custom_middleware_manager_keeps_the_middleware_on_every_field(
    audit_model, rail_graphql, calls, monkeypatch, caplog
):
    rail_graphql(audited_query_fields=["catalog"])
    monkeypatch.setattr(middleware, "_fallback_logged", False)
    caplog.set_level(logging.WARNING, logger="rail_django.audit")

    for _ in range(2):
        result = schema.execute(
            CATALOG % 3, context_value=_request(), middleware=ProjectManager(GraphQLAuditMiddleware())
        )
        assert not result.errors

    assert len(calls) == 2 * catalog_fields(3)
    assert audit_model.objects.count() == 2
    warnings = [r for r in caplog.records if "stays on every GraphQL field" in r.getMessage()]
    assert len(warnings) == 1 and "ProjectManager" in warnings[0].getMessage()  # once per process


def test_a_query_that_is_not_audited_leaves_the_execution_context_as_it_was(audit_model, rail_graphql, monkeypatch):
    rail_graphql(audited_query_fields=["groups"])  # queries are audited, this one is not
    contexts = []
    real = middleware._execution_context

    def capture():
        contexts.append(real())
        return contexts[-1]

    monkeypatch.setattr(middleware, "_execution_context", capture)

    result = schema.execute(CATALOG % 2, context_value=_request(), middleware=[GraphQLAuditMiddleware()])

    assert not result.errors and audit_model.objects.count() == 0
    [exe] = contexts  # only the first root field reached the middleware
    # No state in the instance's ``__dict__`` (that alone slows every field of a large query): graphql-core's
    # attributes only, with a manager that has no audit middleware left for the rest of the operation.
    assert not [name for name in vars(exe) if "rail" in name or name == "complete_value"]
    assert exe.middleware_manager.middlewares == ()
