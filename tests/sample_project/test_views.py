"""The sample project over HTTP: demo_setup, login pages, the orders views, GraphQL and what each leaves in the audit trail."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import requests

from tests.sample_project.conftest import PASSWORD, graphql, login, manage, post_form, start_server, stop_server

pytestmark = pytest.mark.sqlite_only

FRONTEND_MUTATION = """
mutation LogFrontendAudit($input: FrontendAuditEventInput!) {
  logFrontendAudit(input: $input) { ok error }
}"""


def _agent() -> str:
    """A User-Agent unique to one test, to find its own events."""
    return f"sample-test/{uuid.uuid4().hex}"


def _order_pk(server, number: str) -> int:
    return server.query("SELECT id FROM orders_order WHERE number = ?", (number,))[0][0]


def _session(server, username: str, agent: str) -> requests.Session:
    session = requests.Session()
    response = login(session, server, username, PASSWORD, **{"User-Agent": agent})
    assert response.status_code == 302, response.text
    return session


# -- demo_setup ------------------------------------------------------------------------------
def test_demo_setup_creates_roles_users_orders_and_a_seeded_hour(sample_server):
    out = sample_server.setup_output
    for name in ("admin", "alice", "bob"):
        assert f"    {name:<7} {PASSWORD}" in out
    assert "raised 2 security alert(s)" in out
    users = dict(sample_server.query("SELECT username, is_superuser FROM auth_user"))
    assert users == {"admin": 1, "alice": 0, "bob": 0}
    roles = sample_server.query(
        "SELECT u.username, g.name FROM auth_user u JOIN auth_user_groups ug ON ug.user_id = u.id "
        "JOIN auth_group g ON g.id = ug.group_id ORDER BY u.username")
    assert roles == [("alice", "Clerks"), ("bob", "Managers")]
    assert sample_server.query("SELECT COUNT(*) FROM orders_order")[0][0] == 8

    seeded = sample_server.events("correlation_id LIKE 'demo-%'")
    assert len(seeded) >= 80
    times = sorted(dt.datetime.fromisoformat(e["timestamp"]) for e in seeded)
    assert times[-1] - times[0] > dt.timedelta(minutes=45)
    assert {e["event_type"] for e in seeded} >= {
        "auth.login.success", "auth.login.failure", "auth.logout", "data.read", "data.update", "ui.action",
        "authz.permission.denied", "data.delete", "query.blocked.depth",
    }
    burst = sample_server.events("event_type = 'auth.login.failure' AND client_ip = '203.0.113.66'")
    assert len(burst) == 12
    # Only the seeded burst's alerts (other tests in this session brute-force the same server).
    alerts = sample_server.events(
        "event_type = 'security.alert' AND json_extract(additional_data, '$.context.key') IN ('203.0.113.66', 'admin')"
    )
    assert sorted(a["additional_data"]["context"]["rule"] for a in alerts) == ["failed_logins_per_ip", "failed_logins_per_user"]
    assert all(a["severity"] == "critical" for a in alerts)


def test_demo_setup_again_changes_nothing_but_passwords(sample_server):
    before = sample_server.query(
        "SELECT (SELECT COUNT(*) FROM auth_user), (SELECT COUNT(*) FROM orders_order), "
        "(SELECT COUNT(*) FROM rail_django_auditeventmodel WHERE correlation_id LIKE 'demo-%')")
    result = manage(sample_server.data_dir, "demo_setup", "--password", PASSWORD, "--port", "8001")
    assert "not seeding again" in result.stdout
    assert "Security dashboard: http://127.0.0.1:8001/admin/rail_django/auditeventmodel/dashboard/" in result.stdout
    after = sample_server.query(
        "SELECT (SELECT COUNT(*) FROM auth_user), (SELECT COUNT(*) FROM orders_order), "
        "(SELECT COUNT(*) FROM rail_django_auditeventmodel WHERE correlation_id LIKE 'demo-%')")
    assert after == before


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--password", "short"], "--password must be at least 8 characters long"),
     (["--no-seed", "--reseed"], "--no-seed and --reseed contradict each other")],
)
def test_demo_setup_refuses_bad_flags(tmp_path, args, message):
    manage(tmp_path, "migrate", "--noinput")
    result = manage(tmp_path, "demo_setup", *args, check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == f"CommandError: {message}"
    assert "Traceback" not in result.stderr


# -- login and logout pages --------------------------------------------------------------------
def test_wrong_then_right_password_are_both_recorded(sample_server):
    agent = _agent()
    session = requests.Session()
    wrong = login(session, sample_server, "alice", "not-her-password", **{"User-Agent": agent})
    assert wrong.status_code == 200 and 'id="login-error"' in wrong.text
    right = login(session, sample_server, "alice", PASSWORD)
    assert right.status_code == 302 and right.headers["Location"] == "/orders/"

    failure, success = sample_server.wait_for_events("user_agent = ?", (agent,), count=2)
    assert failure["event_type"] == "auth.login.failure" and failure["success"] == 0
    assert failure["username"] is None and failure["additional_data"]["context"]["username_attempted"] == "alice"
    assert failure["client_ip"] == "127.0.0.1" and failure["request_path"] == "/accounts/login/"
    assert success["event_type"] == "auth.login.success" and success["username"] == "alice"
    assert "not-her-password" not in str(failure) and PASSWORD not in str(success)


def test_logout_is_recorded(sample_server):
    agent = _agent()
    session = _session(sample_server, "bob", agent)
    response = post_form(session, sample_server, "/accounts/logout/")
    assert response.status_code == 302 and response.headers["Location"] == "/accounts/login/"
    events = sample_server.wait_for_events("user_agent = ? AND event_type = 'auth.logout'", (agent,))
    assert events[0]["username"] == "bob"


def test_anonymous_visitors_are_sent_to_the_login_page(sample_server):
    response = requests.get(sample_server.url("/orders/"), allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"].startswith("/accounts/login/")


# -- the orders views ----------------------------------------------------------------------------
def test_clerk_approves_an_order_but_may_not_delete_one(sample_server):
    agent = _agent()
    session = _session(sample_server, "alice", agent)
    approve = post_form(session, sample_server, f"/orders/{_order_pk(sample_server, 'A-1001')}/approve/")
    assert approve.status_code == 302
    assert "Approved by alice" in session.get(sample_server.url("/orders/")).text

    refused = post_form(session, sample_server, f"/orders/{_order_pk(sample_server, 'A-1002')}/delete/")
    assert refused.status_code == 403 and "You may not delete orders" in refused.text
    assert sample_server.query("SELECT COUNT(*) FROM orders_order WHERE number = 'A-1002'")[0][0] == 1

    update, denied = sample_server.wait_for_events("user_agent = ? AND event_type != 'auth.login.success'", (agent,), count=2)
    assert update["event_type"] == "data.update" and update["username"] == "alice"
    assert update["additional_data"]["resource"] == {"type": "orders.order", "name": "A-1001", "id": str(_order_pk(sample_server, "A-1001"))}
    assert update["additional_data"]["context"]["changes"]["status"] == ["pending", "approved"]  # tracked Order
    assert denied["event_type"] == "authz.permission.denied" and denied["additional_data"]["outcome"] == "denied"
    assert denied["additional_data"]["context"] == {"permission": "orders.delete_order"}


def test_manager_deletes_an_order(sample_server):
    agent = _agent()
    session = _session(sample_server, "bob", agent)
    pk = _order_pk(sample_server, "A-1003")
    assert post_form(session, sample_server, f"/orders/{pk}/delete/").status_code == 302
    assert sample_server.query("SELECT COUNT(*) FROM orders_order WHERE number = 'A-1003'")[0][0] == 0
    [deleted] = sample_server.wait_for_events("user_agent = ? AND event_type = 'data.delete'", (agent,))
    assert deleted["username"] == "bob" and deleted["severity"] == "warning"
    assert deleted["additional_data"]["resource"]["name"] == "A-1003"


def test_orders_page_has_the_frontend_audit_button(sample_server):
    page = _session(sample_server, "alice", _agent()).get(sample_server.url("/orders/")).text
    assert 'id="log-frontend-audit"' in page
    assert '"X-CSRFToken": token' in page and "logFrontendAudit(input: $input)" in page
    assert 'fetch("/graphql/"' in page


# -- GraphQL ---------------------------------------------------------------------------------------
def test_frontend_mutation_records_one_ui_action_for_the_logged_in_user(sample_server):
    agent = _agent()
    session = _session(sample_server, "alice", agent)
    variables = {"input": {"appName": "orders", "modelName": "Order", "operation": "export", "component": "OrderListPage",
                           "severity": "low", "metadata": {"rows": 8}}}
    response = graphql(session, sample_server, FRONTEND_MUTATION, variables)
    assert response.status_code == 200 and response.json() == {"data": {"logFrontendAudit": {"ok": True, "error": None}}}

    [event] = sample_server.wait_for_events("user_agent = ? AND event_type = 'ui.action'", (agent,))
    assert event["username"] == "alice" and event["request_path"] == "/graphql/"
    assert event["additional_data"]["context"]["operation"] == "export"
    # Only its own event: the GraphQL middleware does not add a second one for this mutation.
    assert len(sample_server.events("correlation_id = ?", (event["correlation_id"],))) == 1
    assert response.headers["X-Correlation-ID"] == event["correlation_id"]


def test_graphql_needs_the_csrf_token(sample_server):
    session = _session(sample_server, "alice", _agent())
    response = graphql(session, sample_server, FRONTEND_MUTATION, {"input": {}}, csrf=False)
    assert response.status_code == 403


def test_order_mutations_are_audited_by_the_graphql_middleware(sample_server):
    session = _session(sample_server, "alice", _agent())
    pk = _order_pk(sample_server, "A-1004")
    approved = graphql(session, sample_server, "mutation A($id: ID!) { approveOrder(id: $id) { ok order { status } } }", {"id": pk})
    assert approved.json()["data"]["approveOrder"] == {"ok": True, "order": {"status": "APPROVED"}}
    refused = graphql(session, sample_server, "mutation D($id: ID!) { deleteOrder(id: $id) { ok } }", {"id": pk})
    assert "You may not delete orders" in refused.json()["errors"][0]["message"]

    approve_events = sample_server.wait_for_events("correlation_id = ?", (approved.headers["X-Correlation-ID"],), count=2)
    assert sorted(e["event_type"] for e in approve_events) == ["data.update", "data.update"]  # the service's and the operation's
    delete_events = sample_server.wait_for_events("correlation_id = ?", (refused.headers["X-Correlation-ID"],), count=2)
    assert [(e["event_type"], e["additional_data"]["outcome"]) for e in delete_events] == [("authz.permission.denied", "denied")] * 2
    # The service's refusal names the permission; the operation's names what the mutation would have been.
    assert {e["additional_data"]["context"].get("attempted_event_type") for e in delete_events} == {None, "data.delete"}


def test_audit_query_is_for_audit_readers_only(sample_server):
    query = "{ auditEvents(eventType: \"security.alert\", clientIp: \"203.0.113.66\", first: 5) { totalCount items { eventType severity } } }"
    admin = graphql(_session(sample_server, "admin", _agent()), sample_server, query).json()
    assert admin["data"]["auditEvents"]["totalCount"] == 2
    assert {item["severity"] for item in admin["data"]["auditEvents"]["items"]} == {"critical"}
    clerk = graphql(_session(sample_server, "alice", _agent()), sample_server, query).json()
    assert clerk["data"] is None and "permission" in clerk["errors"][0]["message"]


def test_graphiql_is_served_only_in_debug_mode(sample_server, tmp_path):
    html = {"Accept": "text/html"}
    assert "graphiql" in requests.get(sample_server.url("/graphql/"), headers=html).text.lower()
    production = start_server(tmp_path / "nodebug", debug=False)
    try:
        response = requests.get(production.url("/graphql/"), headers=html)
        assert response.status_code == 400 and "graphiql" not in response.text.lower()
    finally:
        stop_server(production)
