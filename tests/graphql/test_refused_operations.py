"""A refused read of audit events is one event per operation, however many fields it aliases, and rate-limited."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from rail_django.read.graphql import refusals

pytestmark = pytest.mark.django_db(transaction=True)

DENIED = "authz.permission.denied"


def aliases(count: int, field: str = 'auditEvent(id: "1") { id }') -> str:
    return "{ " + " ".join(f"a{i}: {field}" for i in range(count)) + " }"


def test_an_anonymous_get_with_a_thousand_aliases_stores_one_event(client, audit_model):
    response = client.get("/graphql/?" + urlencode({"query": aliases(1000)}), HTTP_ACCEPT="application/json")

    body = response.json()
    assert response.status_code == 200 and len(body["errors"]) == 1000  # every field is still refused
    assert body["data"] == {f"a{i}": None for i in range(1000)}
    [refusal] = audit_model.objects.all()
    assert refusal.event_type == DENIED and refusal.outcome == "denied" and refusal.username is None
    assert refusal.additional_data["context"] == {
        "permission": "rail_django.view_auditeventmodel",
        "graphql_field": "auditEvent",
        "refused_fields": 1000,
    }


def test_a_300_kb_post_with_ten_thousand_aliases_stores_one_event(client, audit_model):
    query = aliases(10_000)
    assert len(query) > 300_000

    response = client.post("/graphql/", json.dumps({"query": query}), content_type="application/json")

    assert response.status_code == 200 and len(response.json()["errors"]) == 10_000
    [refusal] = audit_model.objects.all()
    assert refusal.additional_data["context"]["refused_fields"] == 10_000


def test_the_count_follows_fragments_and_both_read_fields(graphql, audit_model, user, client):
    client.force_login(user)
    query = """
    query Peek { ...Reads x: auditEvent(id: "2") { id } ping }
    fragment Reads on Query { auditEvent(id: "1") { id } auditEvents { totalCount } }
    """

    status, body = graphql(query, path="/graphql/audited/")

    assert body["data"] is None  # auditEvents is non-null: the refusal stops the operation
    [refusal] = audit_model.objects.filter(event_type=DENIED)
    assert refusal.username == "alice"
    assert refusal.additional_data["context"]["refused_fields"] == 3


def test_refusals_are_rate_limited_per_client_with_one_rate_limit_event(client, audit_model, monkeypatch):
    monkeypatch.setattr(refusals, "REFUSALS_PER_WINDOW", 3)
    monkeypatch.setattr(refusals, "REFUSAL_WINDOW_SECONDS", 3600)

    for _ in range(6):
        body = client.post("/graphql/", json.dumps({"query": aliases(5)}), content_type="application/json").json()
        assert len(body["errors"]) == 5  # refused every time; only the recording stops

    assert audit_model.objects.filter(event_type=DENIED).count() == 3
    [limited] = audit_model.objects.filter(event_type="rate.limit.exceeded")
    assert limited.outcome == "blocked"
    assert limited.additional_data["context"] == {"limit": 3, "window_seconds": 3600, "scope": "auditEvents"}
    assert audit_model.objects.count() == 4

    # Another client (another address) has its own count.
    client.post("/graphql/", json.dumps({"query": aliases(2)}), content_type="application/json", REMOTE_ADDR="198.51.100.9")
    assert audit_model.objects.filter(event_type=DENIED).count() == 4


def test_a_listed_refused_query_still_records_nothing_more(graphql, audit_model, rail_graphql):
    rail_graphql(audited_query_fields=["auditEvent"])

    for path in ("/graphql/", "/graphql/audited/"):
        graphql(aliases(50), path=path)

    assert [e.event_type for e in audit_model.objects.order_by("id")] == [DENIED, DENIED]
