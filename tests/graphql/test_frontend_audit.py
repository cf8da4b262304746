"""``logFrontendAudit`` over HTTP: the seed example, its refusals, its limits and its rate limit."""

from __future__ import annotations

import json

import pytest

from rail_django.read.graphql import build_audit_mutation

pytestmark = pytest.mark.django_db(transaction=True)

# The example of docs' audit-logging page, verbatim.
SEED_MUTATION = """
mutation LogFrontendAudit($input: FrontendAuditEventInput!) {
  logFrontendAudit(input: $input) {
    ok
    error
  }
}
"""
SEED_INPUT = json.loads(
    """
{
  "appName": "admin",
  "modelName": "Order",
  "operation": "approve",
  "component": "OrderApprovalDialog",
  "severity": "medium",
  "success": true,
  "metadata": {"orderId": "123"}
}
"""
)


@pytest.fixture
def logged_in(client, user, audit_model):
    """A logged-in client; the login's own event is removed from the counts below."""
    client.force_login(user)
    return audit_model.objects.count()


def _ui_rows(audit_model):
    return list(audit_model.objects.filter(event_type="ui.action").order_by("id"))


def _call(graphql, **changes):
    payload = {**SEED_INPUT, **changes}
    status, body = graphql(SEED_MUTATION, {"input": payload})
    assert status == 200, body
    return body["data"]["logFrontendAudit"]


def test_seed_example_stores_one_ui_action_for_the_request_user(graphql, audit_model, user, logged_in):
    status, body = graphql(SEED_MUTATION, {"input": SEED_INPUT}, HTTP_USER_AGENT="frontend-test/1.0")

    assert status == 200
    assert body == {"data": {"logFrontendAudit": {"ok": True, "error": None}}}
    assert audit_model.objects.count() == logged_in + 1  # and no second event from the middleware
    [row] = _ui_rows(audit_model)
    assert row.severity == "warning"
    assert row.user_id == str(user.pk) and row.username == "alice"
    assert row.success is True and row.outcome == "success"
    assert row.user_agent == "frontend-test/1.0"
    assert row.request_path == "/graphql/"
    context = row.additional_data["context"]
    assert context["app_name"] == "admin" and context["model_name"] == "Order"
    assert context["operation"] == "approve" and context["component"] == "OrderApprovalDialog"
    assert context["metadata"] == {"orderId": "123"}
    assert context["severity_requested"] == "medium"
    assert row.additional_data["action"] == "approve admin.Order"


@pytest.mark.parametrize(
    ("given", "stored"),
    [("low", "info"), ("medium", "warning"), ("high", "error"), ("critical", "critical"),
     ("ERROR", "error"), ("debug", "debug"), (None, "info")],
)
def test_severity_mapping(graphql, audit_model, logged_in, given, stored):
    payload = {k: v for k, v in SEED_INPUT.items() if k != "severity"}
    if given is not None:
        payload["severity"] = given

    status, body = graphql(SEED_MUTATION, {"input": payload})

    assert body["data"]["logFrontendAudit"]["ok"] is True
    [row] = _ui_rows(audit_model)
    assert row.severity == stored


def test_actor_and_roles_are_never_taken_from_the_input(graphql, audit_model, user, logged_in):
    result = _call(graphql, roles=["superuser", "auditor"], metadata={"userId": 999, "username": "root"})

    assert result["ok"] is True
    [row] = _ui_rows(audit_model)
    assert row.user_id == str(user.pk) and row.username == "alice"
    assert row.additional_data["context"]["client_claimed_roles"] == ["superuser", "auditor"]
    assert "roles" not in row.additional_data["context"]


def test_failed_frontend_action_is_stored_as_a_failure(graphql, audit_model, logged_in):
    assert _call(graphql, success=False, description="approval refused by backend")["ok"] is True

    [row] = _ui_rows(audit_model)
    assert row.success is False and row.outcome == "failure"
    assert row.additional_data["context"]["description"] == "approval refused by backend"


def test_metadata_may_be_sent_as_a_json_string(graphql, audit_model, logged_in):
    assert _call(graphql, metadata='{"orderId": "456"}')["ok"] is True

    [row] = _ui_rows(audit_model)
    assert row.additional_data["context"]["metadata"] == {"orderId": "456"}


def test_secrets_in_metadata_are_redacted(graphql, audit_model, logged_in):
    assert _call(graphql, metadata={"orderId": "1", "accessToken": "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"})["ok"]

    [row] = _ui_rows(audit_model)
    assert row.additional_data["context"]["metadata"] == {"orderId": "1", "accessToken": "***REDACTED***"}


def test_anonymous_call_is_refused_and_stores_nothing(graphql, audit_model):
    result = _call(graphql)

    assert result == {"ok": False, "error": "Authentication is required to record frontend audit events."}
    assert audit_model.objects.count() == 0


def test_anonymous_call_is_stored_when_the_project_allows_it(graphql, audit_model, rail_graphql):
    rail_graphql(frontend_audit_allow_anonymous=True)

    assert _call(graphql)["ok"] is True

    [row] = _ui_rows(audit_model)
    assert row.user_id is None and row.username is None


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"severity": "urgent"}, "Unknown severity 'urgent'"),
        ({"metadata": {"blob": "x" * 9000}}, "metadata is 9011 bytes of JSON; at most 8192 are accepted."),
        ({"metadata": ["not", "an", "object"]}, "metadata must be a JSON object, not list."),
        ({"metadata": "not json"}, "metadata must be a JSON object; the string given is not valid JSON."),
        ({"metadata": "[1, 2]"}, "metadata must be a JSON object, not list."),
        ({"component": "C" * 201}, "component is 201 characters long; at most 200 are accepted."),
        ({"description": "d" * 2001}, "description is 2001 characters long; at most 2000 are accepted."),
        ({"appName": "  "}, "appName must not be empty."),
        ({"roles": ["r"] * 51}, "roles has 51 entries; at most 50 are accepted."),
    ],
)
def test_invalid_input_is_refused_with_a_reason_and_stores_nothing(graphql, audit_model, logged_in, changes, error):
    result = _call(graphql, **changes)

    assert result["ok"] is False
    assert result["error"].startswith(error)
    assert audit_model.objects.count() == logged_in


def test_metadata_limit_is_a_setting(graphql, audit_model, logged_in, rail_graphql):
    rail_graphql(frontend_audit_max_metadata_bytes=16)

    assert _call(graphql, metadata={"orderId": "1"})["ok"] is True  # {"orderId":"1"} is 15 bytes
    assert _call(graphql, metadata={"orderId": "12"})["ok"] is True  # 16: the limit itself is accepted
    assert _call(graphql, metadata={"orderId": "123"})["error"] == "metadata is 17 bytes of JSON; at most 16 are accepted."
    assert len(_ui_rows(audit_model)) == 2


def test_rate_limit_refuses_and_records_one_event_per_window(graphql, audit_model, user, logged_in, rail_graphql):
    rail_graphql(frontend_audit_rate_limit=3, frontend_audit_rate_window=3600)

    results = [_call(graphql) for _ in range(6)]

    assert [r["ok"] for r in results] == [True, True, True, False, False, False]
    assert results[3]["error"] == "Rate limit exceeded: at most 3 frontend audit events per 3600 seconds."
    assert len(_ui_rows(audit_model)) == 3
    [limited] = audit_model.objects.filter(event_type="rate.limit.exceeded")
    assert limited.user_id == str(user.pk) and limited.outcome == "blocked"
    assert limited.additional_data["context"] == {"limit": 3, "window_seconds": 3600, "scope": "logFrontendAudit"}
    assert audit_model.objects.count() == logged_in + 4


def test_rate_limit_counts_each_user_separately(graphql, client, audit_model, django_user_model, user, rail_graphql):
    rail_graphql(frontend_audit_rate_limit=1, frontend_audit_rate_window=3600)
    other = django_user_model.objects.create_user(username="bob", password="x-secret-1")

    client.force_login(user)
    assert [_call(graphql)["ok"], _call(graphql)["ok"]] == [True, False]
    client.force_login(other)
    assert _call(graphql)["ok"] is True

    assert sorted(r.username for r in _ui_rows(audit_model)) == ["alice", "bob"]


def test_disabled_extension_mutations(graphql, audit_model, logged_in, rail_graphql):
    # The mixin built with the setting off has no field at all...
    assert "log_frontend_audit" not in build_audit_mutation(enabled=False)._meta.fields
    assert "log_frontend_audit" in build_audit_mutation(enabled=True)._meta.fields

    # ...and a schema built before the setting was turned off refuses to record.
    rail_graphql(schema_settings={"enable_extension_mutations": False})
    result = _call(graphql)

    assert result == {"ok": False, "error": "Frontend audit events are disabled (enable_extension_mutations is false)."}
    assert audit_model.objects.count() == logged_in


def test_extension_mutations_setting_decides_the_mixin(rail_graphql):
    rail_graphql(schema_settings={"enable_extension_mutations": False})
    assert "log_frontend_audit" not in build_audit_mutation()._meta.fields

    rail_graphql(schema_settings={})  # the default is on
    assert "log_frontend_audit" in build_audit_mutation()._meta.fields


def test_nothing_is_recorded_when_audit_logging_is_off(graphql, audit_model, logged_in, settings):
    settings.GRAPHQL_ENABLE_AUDIT_LOGGING = False

    result = _call(graphql)

    assert result == {"ok": False, "error": "Audit logging is disabled (GRAPHQL_ENABLE_AUDIT_LOGGING is False)."}
    assert audit_model.objects.count() == logged_in


def test_token_apis_bound_actor_counts_as_authenticated(audit_model, user):
    from rail_django.read.graphql import record_frontend_event
    from rail_django.security import bind_actor, use_context

    data = {"app_name": "api", "model_name": "Order", "operation": "sync", "component": "Worker"}
    assert record_frontend_event(None, data)["ok"] is False  # no request, no actor
    with use_context():
        bind_actor(user)
        assert record_frontend_event(None, data) == {"ok": True, "error": None}

    [row] = _ui_rows(audit_model)
    assert row.username == "alice" and row.severity == "info"
