"""A real GraphQL client (``gql`` over ``requests``) against a real HTTP server (pytest-django's live_server).

The client logs in through the login form, keeps the session cookie, sends
the CSRF token as a browser frontend would, validates its documents against
the schema it downloads, and calls the docs' example verbatim.
"""

from __future__ import annotations

import pytest
import requests
from django.contrib.auth.models import Permission
from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport

from tests.graphql.test_frontend_audit import SEED_INPUT, SEED_MUTATION

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = gql(
    """
    query FrontendEvents {
      auditEvents(eventType: "ui.action", first: 5) {
        totalCount
        items { eventType severity username context }
      }
    }
    """
)


def _logged_in_client(base_url: str, username: str, password: str) -> Client:
    session = requests.Session()
    session.get(f"{base_url}/login/", timeout=10).raise_for_status()
    response = session.post(
        f"{base_url}/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, "login failed"
    transport = RequestsHTTPTransport(
        url=f"{base_url}/graphql/",
        cookies=session.cookies,
        headers={"X-CSRFToken": session.cookies["csrftoken"]},  # rotated at login
        timeout=10,
        retries=0,
    )
    return Client(transport=transport, fetch_schema_from_transport=True)


def test_gql_client_records_the_docs_example_and_reads_it_back(live_server, user, audit_model):
    client = _logged_in_client(live_server.url, "alice", "correct-horse-battery")

    with client as session:
        result = session.execute(gql(SEED_MUTATION), variable_values={"input": SEED_INPUT})
        assert result == {"logFrontendAudit": {"ok": True, "error": None}}

        with pytest.raises(TransportQueryError, match="permission to read audit events"):
            session.execute(EVENTS)

        user.user_permissions.add(
            Permission.objects.get(codename="view_auditeventmodel", content_type__app_label="rail_django")
        )
        page = session.execute(EVENTS)["auditEvents"]

    assert page["totalCount"] == 1
    [event] = page["items"]
    assert event["eventType"] == "ui.action" and event["severity"] == "warning" and event["username"] == "alice"
    assert event["context"]["metadata"] == {"orderId": "123"}
    [row] = audit_model.objects.filter(event_type="ui.action")
    assert row.user_id == str(user.pk)
    assert audit_model.objects.filter(event_type="authz.permission.denied").count() == 1
