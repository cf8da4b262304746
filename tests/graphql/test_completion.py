"""When an operation's one event leaves, for each way of running GraphQL: never later than the response."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from graphql import MiddlewareManager

from rail_django.security import security
from rail_django.security.graphql import GraphQLAuditMiddleware, audited_execute, audited_execute_async
from tests.graphql import probe
from tests.graphql.conftest import AUDITED_VIEW, STOCK_VIEW
from tests.testapp.schema import schema

pytestmark = pytest.mark.django_db(transaction=True)

NESTED_ERROR = 'mutation Nested { createGroup(name: "n") { ok group { name brokenNote } } }'


def _request(user=None):
    request = RequestFactory().post("/graphql/")
    request.user = user or AnonymousUser()
    return request


def test_the_audited_view_judges_the_whole_result(graphql, audit_model):
    status, body = graphql(NESTED_ERROR, path=AUDITED_VIEW)

    assert body["data"]["createGroup"]["ok"] is True and body["errors"][0]["path"] == ["createGroup", "group", "brokenNote"]
    [event] = audit_model.objects.all()  # written before the response (SECURITY_EVENT_ASYNC is off in the tests)
    assert event.outcome == "failure" and event.additional_data["context"]["errors"] == ["note unavailable"]


def test_the_stock_view_judges_what_the_root_resolvers_did(graphql, audit_model):
    # The stock view hands the result to nobody: the event leaves when the last root resolver returns,
    # before graphql-core resolves the fields below it (docs/graphql.md, "Which view").
    status, body = graphql(NESTED_ERROR, path=STOCK_VIEW)

    assert body["errors"][0]["message"] == "note unavailable"
    [event] = audit_model.objects.all()
    assert event.outcome == "success" and "errors" not in event.additional_data["context"]


def test_an_outer_middleware_error_after_the_audit_is_in_the_event(audit_model, user):
    class RefusesAfterwards:
        def resolve(self, next, root, info, **args):  # noqa: A002
            result = next(root, info, **args)
            if info.path.prev is None:
                raise RuntimeError("outer middleware refused")
            return result

    result = audited_execute(
        schema, 'mutation { createGroup(name: "x") { ok } }', context_value=_request(user),
        middleware=[GraphQLAuditMiddleware(), RefusesAfterwards()],
    )

    assert result.errors[0].message == "outer middleware refused"
    [event] = audit_model.objects.all()
    assert event.event_type == "data.create" and event.username == "alice"
    assert event.outcome == "failure" and event.error_message == "outer middleware refused"


@pytest.mark.parametrize("middleware", [None, [], "audit"], ids=["none", "empty", "already-there"])
def test_audited_execute_records_exactly_one_event(audit_model, user, middleware):
    if middleware == "audit":
        middleware = [GraphQLAuditMiddleware()]

    result = audited_execute(schema, NESTED_ERROR, context_value=_request(user), middleware=middleware)

    assert result.data["createGroup"]["ok"] is True
    [event] = audit_model.objects.all()
    assert event.outcome == "failure" and event.username == "alice"
    assert event.additional_data["context"]["operation_name"] == "Nested"


def test_audited_execute_accepts_graphene_argument_names_and_a_graphql_core_schema(audit_model, user):
    audited_execute(schema.graphql_schema, "mutation Add($n: String!) { createGroup(name: $n) { ok } }",
                    context=_request(user), variables={"n": "via-core"}, operation="Add")

    [event] = audit_model.objects.all()
    assert event.additional_data["context"]["variables"] == {"n": "via-core"} and event.username == "alice"
    with pytest.raises(TypeError, match="graphene Schema or a GraphQLSchema"):
        audited_execute(object(), "{ ping }")


def test_audited_execute_records_rejected_operations_when_asked(audit_model, rail_graphql):
    audited_execute(schema, "mutation Bad { createGroup(nme: 1) { ok } }")
    assert audit_model.objects.count() == 0

    rail_graphql(record_validation_failures=True)
    result = audited_execute(schema, "mutation Bad { createGroup(nme: 1) { ok } }")

    assert result.data is None
    [event] = audit_model.objects.all()
    assert event.event_type == "query.validation.failed"
    assert event.additional_data["context"]["operation_name"] == "Bad"


def test_audited_execute_async_sees_errors_below_async_root_fields(audit_model, rail_graphql):
    rail_graphql(audited_query_fields=["parts"])

    result = asyncio.run(audited_execute_async(probe.schema, "{ parts(size: 2) { broken } ping }",
                                               context_value=_request()))

    assert len(result.errors) == 2
    security.flush(timeout=30)  # on an event loop, events are always queued
    [event] = audit_model.objects.all()
    assert event.outcome == "failure" and event.additional_data["context"]["errors"] == [
        "part 0 is broken", "part 1 is broken",
    ]


@pytest.mark.parametrize("context", ["request", "dict", "none"])
def test_the_middleware_alone_records_each_execution_once_whatever_the_context(audit_model, context):
    def make():
        return {"request": _request, "dict": dict, "none": lambda: None}[context]()

    shared = make()
    for number in range(2):  # the same context object twice: two operations, two events
        result = schema.execute(f'mutation {{ createGroup(name: "ctx{number}") {{ ok }} }}', context_value=shared,
                                middleware=[GraphQLAuditMiddleware()])
        assert not result.errors
    schema.execute('mutation { createGroup(name: "other") { ok } }', context_value=make(),
                   middleware=[GraphQLAuditMiddleware()])

    assert audit_model.objects.filter(event_type="data.create").count() == 3


@pytest.mark.urls("tests.graphql.urls")
@pytest.mark.parametrize("path", ["/stock/", "/audited/"])
def test_an_operation_run_from_a_resolver_records_its_own_event(client, audit_model, rail_graphql, path):
    rail_graphql(audited_query_fields=["nestedMutation"])

    response = client.post(path, json.dumps({"query": "query Outer { nestedMutation }"}), content_type="application/json")

    assert response.json() == {"data": {"nestedMutation": True}}
    events = {e.additional_data["context"]["operation_name"]: e for e in audit_model.objects.all()}
    assert sorted(events) == ["Inner", "Outer"]
    assert events["Inner"].event_type == "data.update" and events["Outer"].event_type == "data.read"


@pytest.mark.urls("tests.graphql.urls")
@pytest.mark.parametrize("path", ["/stock/", "/audited/"])
def test_permission_denied_from_a_probe_mutation_is_denied(client, audit_model, path):
    response = client.post(path, json.dumps({"query": "mutation { refuse { ok } touch { ok } }"}),
                           content_type="application/json")

    assert response.json()["data"] == {"refuse": None, "touch": {"ok": True}}
    [event] = audit_model.objects.all()
    assert event.event_type == "authz.permission.denied" and event.outcome == "denied"
    assert event.additional_data["context"]["errors"] == ["not yours"]


def test_a_failure_inside_the_audit_never_fails_the_request(graphql, audit_model, caplog, endpoint):
    class Hostile:
        """A context object whose attributes cannot be set and whose lookups blow up."""

        __slots__ = ()

        def __getattr__(self, name):
            raise RuntimeError("hostile context")

    result = schema.execute('mutation { createGroup(name: "still works") { ok } }', context_value=Hostile(),
                            middleware=[GraphQLAuditMiddleware()])

    assert not result.errors and result.data == {"createGroup": {"ok": True}}
    assert "GraphQL audit bookkeeping failed" in caplog.text
    status, body = graphql('mutation { createGroup(name: "next") { ok } }', path=endpoint)
    assert body == {"data": {"createGroup": {"ok": True}}} and audit_model.objects.count() == 1


class ProjectManager(MiddlewareManager):
    """A project's own middleware manager: counts the resolvers graphql-core asks it for."""

    asked = 0

    def get_field_resolver(self, field_resolver):
        ProjectManager.asked += 1
        return super().get_field_resolver(field_resolver)


def test_a_projects_own_middleware_manager_is_used_as_it_is(audit_model, user, caplog):
    ProjectManager.asked = 0

    audited_execute(schema, NESTED_ERROR, context_value=_request(user), middleware=ProjectManager(GraphQLAuditMiddleware()))

    assert ProjectManager.asked == 5  # createGroup, ok, group, name, brokenNote: every field, through that class
    [event] = audit_model.objects.all()
    assert event.outcome == "failure"

    result = audited_execute(schema, 'mutation { createGroup(name: "unaudited") { ok } }', middleware=ProjectManager())
    assert not result.errors and audit_model.objects.count() == 1  # without the audit middleware: not audited...
    assert "ProjectManager has no GraphQLAuditMiddleware" in caplog.text  # ...and the log says so
