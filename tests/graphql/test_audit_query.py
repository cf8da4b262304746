"""``auditEvents`` / ``auditEvent`` over HTTP: permission, filters, pagination, typed fields."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import time_machine
from django.contrib.auth.models import Permission

from rail_django.security import EventType, Outcome, Severity, security, use_context

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS_QUERY = """
query Events($eventType: String, $eventTypes: [String!], $severity: String, $outcome: String, $userId: String,
             $username: String, $clientIp: String, $correlationId: String, $since: DateTime, $until: DateTime,
             $success: Boolean, $first: Int, $after: String, $page: Int, $pageSize: Int) {
  auditEvents(eventType: $eventType, eventTypes: $eventTypes, severity: $severity, outcome: $outcome,
              userId: $userId, username: $username, clientIp: $clientIp, correlationId: $correlationId,
              since: $since, until: $until, success: $success, first: $first, after: $after,
              page: $page, pageSize: $pageSize) {
    totalCount
    items { id eventType severity outcome action username clientIp correlationId timestamp }
    pageInfo { hasNextPage hasPreviousPage endCursor startCursor page pageSize }
  }
}
"""
ONE_QUERY = """
query One($id: ID!) {
  auditEvent(id: $id) {
    id eventType severity outcome success action userId username clientIp userAgent requestPath requestMethod
    correlationId sessionId errorMessage riskScore timestamp context resource { type name id }
  }
}
"""


def _at(hour: int) -> datetime:
    return datetime(2024, 5, 1, hour, 0, tzinfo=timezone.utc)


def _emit(event_type, *, hour, ip="198.51.100.1", correlation="corr-a", user_id="7", username="carol", **kwargs):
    snapshot = {"client_ip": ip, "correlation_id": correlation, "user_id": user_id, "username": username}
    with time_machine.travel(_at(hour), tick=False), use_context(snapshot):
        return security.emit(event_type, **kwargs)


@pytest.fixture
def stored_events():
    """Six events over six hours, oldest first."""
    return [
        _emit(EventType.AUTH_LOGIN_FAILURE, hour=1, outcome=Outcome.FAILURE, ip="203.0.113.5", username="mallory", user_id=None),
        _emit(EventType.DATA_CREATE, hour=2, action="created order", resource_type="order", resource_id=42),
        _emit(EventType.DATA_DELETE, hour=3, correlation="corr-b", context={"reason": "cleanup"}),
        _emit(EventType.AUTHZ_PERMISSION_DENIED, hour=4, outcome=Outcome.DENIED, user_id="8", username="dave"),
        _emit(EventType.SYSTEM_ERROR, hour=5, outcome=Outcome.ERROR, severity=Severity.CRITICAL, error="disk full"),
        _emit(EventType.DATA_READ, hour=6, ip="2001:db8::1", risk_score=0.25),
    ]


@pytest.fixture
def reader(client, django_user_model):
    """A logged-in user holding only the view permission (its login event is at the current time)."""
    user = django_user_model.objects.create_user(username="reader", password="reader-pass-123")
    user.user_permissions.add(Permission.objects.get(codename="view_auditeventmodel", content_type__app_label="rail_django"))
    client.force_login(user)
    return user


def _events(graphql, **variables):
    status, body = graphql(EVENTS_QUERY, {"until": "2024-05-02T00:00:00+00:00", **variables})
    assert status == 200, body
    assert "errors" not in body, body["errors"]
    return body["data"]["auditEvents"]


def _types(page):
    return [item["eventType"] for item in page["items"]]


@pytest.mark.parametrize("who", ["anonymous", "no_permission"])
def test_readers_without_the_permission_are_refused_and_recorded(graphql, client, user, audit_model, rail_graphql, who):
    # Even when the project also audits this query, the refusal is recorded once.
    rail_graphql(audited_query_fields=["auditEvents", "auditEvent"])
    if who == "no_permission":
        client.force_login(user)
    before = audit_model.objects.count()

    status, body = graphql(EVENTS_QUERY, {})

    assert body["data"] is None
    assert body["errors"][0]["message"] == "You do not have permission to read audit events (rail_django.view_auditeventmodel)."
    [refusal] = audit_model.objects.order_by("id")[before:]
    assert refusal.event_type == "authz.permission.denied" and refusal.outcome == "denied"
    assert refusal.username == (None if who == "anonymous" else "alice")
    assert refusal.additional_data["context"] == {
        "permission": "rail_django.view_auditeventmodel",
        "graphql_field": "auditEvents",
        "refused_fields": 1,
    }

    status, body = graphql(ONE_QUERY, {"id": "1"})
    assert body["data"] == {"auditEvent": None} and "permission" in body["errors"][0]["message"]
    assert audit_model.objects.count() == before + 2


def test_refused_audit_field_beside_an_audited_field_is_a_failure_not_a_second_denial(
    graphql, audit_model, rail_graphql
):
    rail_graphql(audited_query_fields=["auditEvents", "ping"])

    status, body = graphql("query Mixed { auditEvents { totalCount } ping }")

    assert body["data"] is None  # auditEvents is non-null
    refusal, operation = audit_model.objects.order_by("id")
    assert refusal.event_type == "authz.permission.denied"
    assert operation.event_type == "data.read" and operation.outcome == "failure"
    assert operation.additional_data["context"]["root_fields"] == ["auditEvents", "ping"]


def test_superuser_and_permission_holder_may_read(graphql, client, django_user_model, reader, stored_events):
    assert _types(_events(graphql, first=10)) == [
        "data.read", "system.error", "authz.permission.denied", "data.delete", "data.create", "auth.login.failure",
    ]
    admin = django_user_model.objects.create_superuser(username="root", password="root-pass-123")
    client.force_login(admin)
    assert _events(graphql)["totalCount"] == 6


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"eventType": "data.delete"}, ["data.delete"]),
        ({"eventTypes": ["data.create", "data.read"]}, ["data.read", "data.create"]),
        ({"severity": "critical"}, ["system.error"]),
        ({"outcome": "denied"}, ["authz.permission.denied"]),
        ({"outcome": "success"}, ["data.read", "data.delete", "data.create"]),
        ({"success": False}, ["system.error", "authz.permission.denied", "auth.login.failure"]),
        ({"userId": "8"}, ["authz.permission.denied"]),
        ({"username": "mallory"}, ["auth.login.failure"]),
        ({"clientIp": "203.0.113.5"}, ["auth.login.failure"]),
        ({"clientIp": "2001:DB8::1"}, ["data.read"]),
        ({"correlationId": "corr-b"}, ["data.delete"]),
        ({"since": "2024-05-01T03:00:00+00:00", "until": "2024-05-01T05:00:00+00:00"},
         ["authz.permission.denied", "data.delete"]),
        ({"eventTypes": ["data.create", "data.delete"], "correlationId": "corr-a"}, ["data.create"]),
    ],
)
def test_filters_select_only_matching_events(graphql, reader, stored_events, filters, expected):
    page = _events(graphql, **filters)

    assert _types(page) == expected
    assert page["totalCount"] == len(expected)


def test_cursor_pagination_walks_every_event_once(graphql, reader, stored_events):
    seen, after, pages = [], None, 0
    while True:
        page = _events(graphql, first=4, after=after)
        pages += 1
        seen += [item["id"] for item in page["items"]]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    assert pages == 2
    assert seen == [str(e.event_id) for e in reversed(stored_events)]


def test_numbered_pagination(graphql, reader, stored_events):
    first = _events(graphql, page=1, pageSize=4)
    second = _events(graphql, page=2, pageSize=4)

    assert _types(first) == ["data.read", "system.error", "authz.permission.denied", "data.delete"]
    assert _types(second) == ["data.create", "auth.login.failure"]
    assert first["pageInfo"] == {**first["pageInfo"], "page": 1, "pageSize": 4, "hasNextPage": True, "hasPreviousPage": False}
    assert second["pageInfo"]["hasNextPage"] is False and second["pageInfo"]["hasPreviousPage"] is True
    assert second["totalCount"] == 6


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"first": 2, "page": 1}, "Use either first/after or page/pageSize, not both."),
        ({"first": 101}, "first must be between 1 and 100."),
        ({"pageSize": 0}, "pageSize must be between 1 and 100."),
        ({"page": 0}, "page must be 1 or more."),
        ({"after": "not-a-cursor"}, "after: 'not-a-cursor' is not a cursor returned by auditEvents."),
        ({"outcome": "maybe"}, "outcome must be one of success, failure, denied, blocked, error."),
        ({"severity": "loud"}, "severity must be one of debug, info, warning, error, critical."),
        ({"clientIp": "10.0.0.999"}, "clientIp: '10.0.0.999' is not an IP address."),
        ({"username": "u" * 300}, "username is longer than 255 characters."),
    ],
)
def test_bad_arguments_get_a_clear_error(graphql, reader, variables, message):
    status, body = graphql(EVENTS_QUERY, variables)

    assert body["data"] is None
    assert body["errors"][0]["message"] == message


def test_one_event_with_fields_lifted_from_additional_data(graphql, reader, stored_events, audit_model):
    created = stored_events[1]
    row = audit_model.objects.get(event_id=created.event_id)

    status, by_uuid = graphql(ONE_QUERY, {"id": str(created.event_id)})
    status, by_pk = graphql(ONE_QUERY, {"id": str(row.pk)})

    assert by_uuid == by_pk
    event = by_uuid["data"]["auditEvent"]
    assert event["id"] == str(created.event_id)
    assert event["eventType"] == "data.create" and event["outcome"] == "success" and event["success"] is True
    assert event["action"] == "created order"
    assert event["resource"] == {"type": "order", "name": None, "id": "42"}
    assert event["username"] == "carol" and event["userId"] == "7"
    assert event["clientIp"] == "198.51.100.1" and event["correlationId"] == "corr-a"
    assert event["timestamp"].startswith("2024-05-01T02:00:00")

    status, body = graphql(ONE_QUERY, {"id": str(stored_events[2].event_id)})
    assert body["data"]["auditEvent"]["context"] == {"reason": "cleanup"}
    status, body = graphql(ONE_QUERY, {"id": str(stored_events[4].event_id)})
    assert body["data"]["auditEvent"]["errorMessage"] == "disk full"
    assert body["data"]["auditEvent"]["severity"] == "critical" and body["data"]["auditEvent"]["outcome"] == "error"
    status, body = graphql(ONE_QUERY, {"id": str(stored_events[5].event_id)})
    assert body["data"]["auditEvent"]["riskScore"] == 0.25

    for missing in ("00000000-0000-0000-0000-000000000000", "999999", str(2**63 - 1)):
        status, body = graphql(ONE_QUERY, {"id": missing})
        assert body == {"data": {"auditEvent": None}}


@pytest.mark.parametrize("given", ["nope", "²", "١٢", "12.5", "-3", str(2**63), "9" * 5000, ""])
def test_an_id_that_is_neither_a_uuid_nor_a_database_id_gets_a_clean_error(graphql, reader, given):
    # "²" and "١٢" are digits to str.isdigit() but not to int(); 2**63 overflows the id column.
    status, body = graphql(ONE_QUERY, {"id": given})

    assert status == 200 and body["data"] == {"auditEvent": None}
    [error] = body["errors"]
    assert error["message"] == f"id: {given[:40]!r} is not an audit event id (an event UUID or a database id)."
    assert error["path"] == ["auditEvent"]


def test_audit_rows_cannot_be_changed_through_graphql(graphql):
    status, body = graphql("{ __schema { mutationType { fields { name } } } }")

    names = [field["name"] for field in body["data"]["__schema"]["mutationType"]["fields"]]
    assert [name for name in names if "audit" in name.lower()] == ["logFrontendAudit"]
