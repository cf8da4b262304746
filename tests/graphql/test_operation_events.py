"""GraphQLAuditMiddleware over HTTP: one event per executed operation, with the right type and outcome.

Most tests run through both views (the ``endpoint`` fixture): graphene-django's
stock ``GraphQLView`` with the middleware alone, and ``AuditGraphQLView``.
Errors raised below a root field are seen through ``AuditGraphQLView`` only
(it reads them from the ``ExecutionResult``).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission

from rail_django.conf import get_graphql_config
from rail_django.security.graphql import mutation_event_type
from tests.graphql.conftest import AUDITED_VIEW, STOCK_VIEW

pytestmark = pytest.mark.django_db(transaction=True)

MASK = "***REDACTED***"


@pytest.fixture
def gql(graphql, endpoint):
    """``graphql`` through the view of this test's run (see the ``endpoint`` fixture)."""

    def run(query, variables=None, operation_name=None, **extra):
        return graphql(query, variables, operation_name, path=endpoint, **extra)

    return run


def _events(model):
    return list(model.objects.order_by("id"))


def test_mutation_with_two_root_fields_records_one_event(gql, audit_model, user, client, endpoint):
    client.force_login(user)
    before = audit_model.objects.count()

    status, body = gql(
        """
        mutation Setup($name: String!) {
          first: createGroup(name: $name) { ok group { id name } }
          second: createGroup(name: "editors") { ok }
        }
        """,
        {"name": "reviewers"},
    )

    assert status == 200 and body["data"]["first"]["ok"] and body["data"]["second"]["ok"]
    assert Group.objects.count() == 2
    [event] = audit_model.objects.order_by("id")[before:]
    assert event.event_type == "data.create"
    assert event.success is True and event.outcome == "success"
    assert event.user_id == str(user.pk) and event.username == "alice"
    assert event.request_path == endpoint and event.request_method == "POST"
    context = event.additional_data["context"]
    assert context["operation_type"] == "mutation"
    assert context["operation_name"] == "Setup"
    assert context["root_fields"] == ["createGroup", "createGroup"]
    assert context["variables"] == {"name": "reviewers"}
    assert isinstance(context["duration_ms"], float) and context["duration_ms"] >= 0
    assert "errors" not in context
    assert event.additional_data["resource"]["name"] == "Setup"


@pytest.mark.parametrize(
    ("mutation", "event_type"),
    [
        ('createGroup(name: "a") { ok }', "data.create"),
        ('bulkCreateGroups(names: ["a", "b"]) { ok }', "data.bulk"),
        ('archiveGroup(id: "{pk}") { ok }', "data.update"),  # no known prefix
        ('updateGroup(id: "{pk}", name: "b") { ok }', "data.update"),
    ],
)
def test_event_type_comes_from_the_field_name_prefix(gql, audit_model, mutation, event_type):
    group = Group.objects.create(name="target")
    status, body = gql("mutation { " + mutation.replace("{pk}", str(group.pk)) + " }")

    assert status == 200 and "errors" not in body
    [event] = _events(audit_model)
    assert event.event_type == event_type and event.success


def test_project_mapping_overrides_the_prefix_rule(gql, audit_model, rail_graphql):
    group = Group.objects.create(name="target")
    # Either spelling of the field name works: the python name or the GraphQL name.
    rail_graphql(mutation_event_types={"archive_group": "data.delete", "createGroup": "authz.role.assigned"})

    gql(f'mutation {{ archiveGroup(id: "{group.pk}") {{ ok }} }}')
    gql('mutation { createGroup(name: "admins") { ok } }')

    assert [e.event_type for e in _events(audit_model)] == ["data.delete", "authz.role.assigned"]


def test_mixed_root_fields_take_the_most_severe_type(gql, audit_model, user, client):
    user.user_permissions.add(Permission.objects.get(codename="delete_group"))
    client.force_login(user)
    group = Group.objects.create(name="old")
    before = audit_model.objects.count()

    gql(f'mutation {{ createGroup(name: "new") {{ ok }} deleteGroup(id: "{group.pk}") {{ ok }} }}')

    [event] = audit_model.objects.order_by("id")[before:]
    assert event.event_type == "data.delete" and event.severity == "warning"
    assert event.additional_data["context"]["field_event_types"] == {
        "createGroup": "data.create",
        "deleteGroup": "data.delete",
    }


def test_ok_false_payload_is_a_failure(gql, audit_model):
    status, body = gql('mutation Blank { createGroup(name: "  ") { ok error } }')

    assert body["data"]["createGroup"] == {"ok": False, "error": "name must not be empty"}
    [event] = _events(audit_model)
    assert event.event_type == "data.create"
    assert event.success is False and event.outcome == "failure"
    assert event.severity == "warning"
    assert event.error_message == "name must not be empty"
    assert event.additional_data["context"]["errors"] == ["name must not be empty"]


def test_non_empty_errors_list_is_a_failure(gql, audit_model):
    gql('mutation { validateGroups(name: "root") { errors } }')

    [event] = _events(audit_model)
    assert event.outcome == "failure"
    assert event.additional_data["context"]["errors"] == ["'root' is reserved"]


def test_resolver_exception_is_a_failure_with_its_message_redacted(gql, audit_model):
    status, body = gql('mutation { explodeGroup(id: "1") { ok } }')

    assert body["data"]["explodeGroup"] is None
    assert "hunter2" in body["errors"][0]["message"]  # the client sees graphene's message; the audit trail must not
    [event] = _events(audit_model)
    assert event.event_type == "data.update" and event.outcome == "failure"
    assert "database exploded" in event.error_message
    assert "hunter2" not in event.error_message
    assert "hunter2" not in str(event.additional_data)
    assert event.additional_data["context"]["errors"] == [f"database exploded while connecting with password={MASK}"]


def test_permission_denied_is_recorded_as_denied(gql, audit_model, user, client):
    client.force_login(user)
    group = Group.objects.create(name="keep")
    before = audit_model.objects.count()

    status, body = gql(f'mutation Remove {{ deleteGroup(id: "{group.pk}") {{ ok }} }}')

    assert body["errors"][0]["message"] == "You may not delete groups."
    assert Group.objects.filter(pk=group.pk).exists()
    [event] = audit_model.objects.order_by("id")[before:]
    assert event.event_type == "authz.permission.denied"
    assert event.outcome == "denied" and event.success is False
    assert event.severity == "warning"
    assert event.username == "alice"
    context = event.additional_data["context"]
    assert context["attempted_event_type"] == "data.delete"
    assert context["root_fields"] == ["deleteGroup"]
    assert context["errors"] == ["You may not delete groups."]


def test_error_below_a_root_field_is_a_failure(graphql, audit_model):
    status, body = graphql('mutation { createGroup(name: "nested") { ok group { name brokenNote } } }', path=AUDITED_VIEW)

    assert body["data"]["createGroup"]["ok"] is True
    assert body["errors"][0]["path"] == ["createGroup", "group", "brokenNote"]
    [event] = _events(audit_model)
    assert event.event_type == "data.create" and event.outcome == "failure"
    assert event.additional_data["context"]["errors"] == ["note unavailable"]


def test_variables_named_like_secrets_are_redacted(gql, audit_model, user, client):
    client.force_login(user)
    before = audit_model.objects.count()

    status, body = gql(
        "mutation Rotate($password: String!, $apiToken: String, $note: String!) {"
        "  setPassword(password: $password, apiToken: $apiToken) { ok }"
        "  createGroup(name: $note) { ok }"
        "}",
        {"password": "N3w-Secret-Passw0rd", "apiToken": "tok_live_987654", "note": "ops"},
    )

    assert body["data"]["setPassword"]["ok"] is True
    [event] = audit_model.objects.order_by("id")[before:]
    assert event.additional_data["context"]["variables"] == {"password": MASK, "apiToken": MASK, "note": "ops"}
    stored = str(event.additional_data) + (event.error_message or "")
    assert "N3w-Secret-Passw0rd" not in stored and "tok_live_987654" not in stored


def test_frontend_mutation_records_only_its_own_event(gql, audit_model, user, client):
    client.force_login(user)
    before = audit_model.objects.count()
    payload = {"appName": "admin", "modelName": "Order", "operation": "approve", "component": "Dialog"}

    gql(
        "mutation LogFrontendAudit($input: FrontendAuditEventInput!) { logFrontendAudit(input: $input) { ok error } }",
        {"input": payload},
    )
    assert [e.event_type for e in audit_model.objects.order_by("id")[before:]] == ["ui.action"]

    # Beside another root field, the operation's event names only that field.
    gql(
        "mutation Both($input: FrontendAuditEventInput!) {"
        "  logFrontendAudit(input: $input) { ok } createGroup(name: \"g\") { ok } }",
        {"input": payload},
    )
    new = audit_model.objects.order_by("id")[before + 1 :]
    assert sorted(e.event_type for e in new) == ["data.create", "ui.action"]
    [operation] = [e for e in new if e.event_type == "data.create"]
    assert operation.additional_data["context"]["root_fields"] == ["createGroup"]


CATALOG = "query Catalog { catalog(size: 4) { id name sku price inStock parts { id name } } }"


def test_query_with_nested_lists_is_not_recorded_unless_listed(gql, audit_model):
    status, body = gql(CATALOG)

    assert status == 200 and len(body["data"]["catalog"]) == 4
    assert len(body["data"]["catalog"][0]["parts"]) == 3
    assert _events(audit_model) == []


@pytest.mark.parametrize("listed", ["catalog", "CATALOG", "Catalog"])
def test_listed_query_with_nested_lists_records_one_event(gql, audit_model, rail_graphql, listed):
    # "catalog" names the root field, "Catalog" the operation; both are case-insensitive.
    rail_graphql(audited_query_fields=[listed])

    status, body = gql(CATALOG)

    assert len(body["data"]["catalog"]) == 4
    [event] = _events(audit_model)
    assert event.event_type == "data.read" and event.outcome == "success"
    context = event.additional_data["context"]
    assert context["operation_type"] == "query" and context["root_fields"] == ["catalog"]


def test_listed_query_fails_when_a_nested_field_fails(graphql, audit_model, rail_graphql):
    rail_graphql(audited_query_fields=["catalog"])

    status, body = graphql("{ catalog(size: 2) { id parts { broken } } ping }", path=AUDITED_VIEW)

    assert len(body["errors"]) == 6 and body["data"]["ping"] == "pong"
    [event] = _events(audit_model)
    assert event.outcome == "failure" and event.additional_data["context"]["root_fields"] == ["catalog", "ping"]
    errors = event.additional_data["context"]["errors"]
    assert len(errors) == 6 and errors[0] == f"part 0 is broken: token={MASK} is stale"


def test_unlisted_query_beside_a_listed_root_field_is_recorded_once(gql, audit_model, rail_graphql):
    rail_graphql(audited_query_fields=["ping"])

    gql("{ catalog { id } ping __typename }")

    [event] = _events(audit_model)
    assert event.additional_data["context"]["root_fields"] == ["catalog", "ping"]


def test_non_null_root_error_stops_the_operation_and_still_records_it(gql, audit_model, rail_graphql):
    rail_graphql(audited_query_fields=["requiredAnswer"])

    status, body = gql("query Strict { requiredAnswer ping }")

    assert body["data"] is None
    [event] = _events(audit_model)
    assert event.outcome == "failure"
    context = event.additional_data["context"]
    assert context["root_fields"] == ["requiredAnswer", "ping"]
    assert context["not_executed"] == ["ping"]
    assert "Cannot return null for non-nullable field" in context["errors"][0]


def test_subscription_operations_are_audited_like_queries(gql, audit_model, rail_graphql):
    gql("subscription { ticks }")
    assert _events(audit_model) == []

    rail_graphql(audited_query_fields=["ticks"])
    gql("subscription Ticker { ticks }")

    [event] = _events(audit_model)
    assert event.event_type == "data.read"
    assert event.additional_data["context"]["operation_type"] == "subscription"


def test_master_switch_off_records_nothing(gql, audit_model, settings):
    settings.GRAPHQL_ENABLE_AUDIT_LOGGING = False

    status, body = gql('mutation { createGroup(name: "quiet") { ok } }')

    assert body["data"]["createGroup"]["ok"] is True
    assert _events(audit_model) == []


def test_failed_mutation_keeps_its_event_when_the_transaction_rolls_back(gql, audit_model, monkeypatch):
    from django.db import connection

    from rail_django.security import security

    # graphene-django's per-database switch (its GRAPHENE setting is cached by its view module).
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_MUTATIONS", True)

    status, body = gql('mutation { createGroup(name: "rolled-back") { ok } validateGroups(name: "x") { errors } }')

    assert body["data"]["createGroup"]["ok"] is True
    assert not Group.objects.exists()  # graphene-django rolled the whole operation back
    security.flush(timeout=30)  # SQLite defers writes made inside a transaction to the writer thread
    [event] = _events(audit_model)
    assert event.outcome == "failure"
    assert event.additional_data["context"]["root_fields"] == ["createGroup", "validateGroups"]


def test_operation_rejected_before_execution_is_recorded_when_asked(graphql, audit_model, rail_graphql):
    bad = "mutation Broken($password: String!) { createGroup(nme: $password) { ok } }"

    status, _ = graphql(bad, {"password": "hunter2"}, path=AUDITED_VIEW)
    assert status == 400 and _events(audit_model) == []  # off by default

    rail_graphql(record_validation_failures=True)
    graphql(bad, {"password": "hunter2"}, path=AUDITED_VIEW)
    graphql("mutation { createGroup(", path=AUDITED_VIEW)  # does not parse
    graphql(bad, {"password": "hunter2"}, path=STOCK_VIEW)  # the stock view cannot see it

    validation, syntax = _events(audit_model)
    assert validation.event_type == syntax.event_type == "query.validation.failed"
    assert validation.outcome == "failure"
    context = validation.additional_data["context"]
    assert context["operation_name"] == "Broken"
    assert context["variables"] == {"password": MASK}
    assert any("nme" in message for message in context["errors"])
    assert "Syntax Error" in syntax.additional_data["context"]["errors"][0]


def test_audited_view_records_executed_operations_once(graphql, audit_model, rail_graphql):
    rail_graphql(record_validation_failures=True)

    graphql('mutation { createGroup(name: "") { ok } }', path=AUDITED_VIEW)

    [event] = _events(audit_model)
    assert event.event_type == "data.create" and event.outcome == "failure"


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
