"""The value of a variable that redaction masks never reaches a sink through an error message."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group

from rail_django.security.graphql import audited_execute
from tests.testapp.schema import schema

pytestmark = pytest.mark.django_db(transaction=True)

MASK = "***REDACTED***"
TOKEN = "sk_live_51HxQ2eLkdIwHu7ixAbCdEf"
BOTH_VIEWS = pytest.mark.parametrize("path", ["/graphql/", "/graphql/audited/"], ids=["stock-view", "audited-view"])


def stored_text(row) -> str:
    return json.dumps(row.additional_data) + (row.error_message or "")


@BOTH_VIEWS
def test_a_secret_variable_quoted_by_a_resolver_error_is_masked(graphql, audit_model, path):
    Group.objects.create(name="target")

    status, body = graphql(
        "mutation Approve($apiToken: ID!) { updateGroup(id: $apiToken, name: \"x\") { ok } }",
        {"apiToken": TOKEN},
        path=path,
    )

    assert TOKEN in body["errors"][0]["message"]  # Django quotes it to the client; the trail must not keep it
    [event] = audit_model.objects.all()
    assert event.outcome == "failure"
    assert event.additional_data["context"]["variables"] == {"apiToken": MASK}
    assert event.additional_data["context"]["errors"] == [f"Field 'id' expected a number but got '{MASK}'."]
    assert event.error_message == f"Field 'id' expected a number but got '{MASK}'."
    assert TOKEN not in stored_text(event)


@pytest.mark.parametrize(
    ("variables", "secret"),
    [
        ({"password": "hunter2-hunter2"}, "hunter2-hunter2"),
        ({"password": "p" * 150 + "-tail-" + "q" * 150}, "q" * 100),  # graphql-core cuts long values in the middle
        ({"userCredentials": {"pin": "zq-secret-77"}}, "zq-secret-77"),  # masked as a whole: every value inside
        ({"sessionKey": 98765432109}, "98765432109"),  # more than a GraphQL Int holds
    ],
    ids=["short", "cut-by-graphql-core", "nested", "number"],
)
def test_a_rejected_operation_never_stores_the_secret_its_error_quotes(
    graphql, audit_model, rail_graphql, variables, secret
):
    rail_graphql(record_validation_failures=True)
    [name] = variables
    query = f"query Size(${name}: Int) {{ catalog(size: ${name}) {{ id }} }}"

    status, body = graphql(query, variables, path="/graphql/audited/")

    # graphql-core 3.2 says "got invalid value", 3.3 "has invalid value"; both quote the value.
    assert status == 400 and "invalid value" in body["errors"][0]["message"]
    [event] = audit_model.objects.all()
    assert event.event_type == "query.validation.failed"
    assert event.additional_data["context"]["variables"] == {name: MASK}
    message = event.additional_data["context"]["errors"][0]
    assert message.startswith(f"Variable '${name}' ") and "invalid value" in message and MASK in message
    assert secret not in stored_text(event)


def test_short_secrets_are_masked_only_where_they_stand_alone(graphql, audit_model, rail_graphql):
    rail_graphql(record_validation_failures=True)

    graphql("query Size($token: Int) { catalog(size: $token) { id } }", {"token": "nt"}, path="/graphql/audited/")

    [event] = audit_model.objects.all()
    message = event.additional_data["context"]["errors"][0]
    # The quoted "nt" is masked; the "nt" inside "Int" and "non-integer" is not.
    assert message.endswith(f"Int cannot represent non-integer value: '{MASK}'")
    assert "'nt'" not in message


def test_audited_execute_masks_secrets_in_errors_too(audit_model, rf, user):
    request = rf.post("/graphql/")
    request.user = user

    result = audited_execute(
        schema,
        "mutation Approve($apiToken: ID!) { updateGroup(id: $apiToken, name: \"x\") { ok } }",
        variable_values={"apiToken": TOKEN},
        context_value=request,
    )

    assert TOKEN in result.errors[0].message
    [event] = audit_model.objects.all()
    assert event.username == "alice" and TOKEN not in stored_text(event)
