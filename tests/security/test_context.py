"""Request context: correlation ids, client IP trust, async requests, actors outside sessions."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.test import override_settings

from rail_django.capture.client_ip import resolve_client_ip
from rail_django.capture.context import accept_correlation_id, get_current_context
from rail_django.security import EventType, bind_actor, capture_context, propagate, security, use_context

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_response_gets_a_correlation_id(client):
    first = client.get("/plain/")["X-Correlation-ID"]
    second = client.get("/plain/")["X-Correlation-ID"]
    assert first and second and first != second


@override_settings(RAIL_DJANGO_TRUSTED_PROXIES=["127.0.0.1"])  # the test client's peer: a trusted proxy may set the id
def test_well_formed_incoming_request_id_is_kept_and_stored(client, audit_model):
    response = client.get("/emit/", HTTP_X_REQUEST_ID="req-42.abc")
    assert response["X-Correlation-ID"] == "req-42.abc"
    assert audit_model.objects.get().correlation_id == "req-42.abc"
    assert client.get("/plain/", HTTP_X_CORRELATION_ID="upstream-7")["X-Correlation-ID"] == "upstream-7"


@pytest.mark.parametrize("hostile", ["a" * 65, "bad id with spaces", "x\r\nSet-Cookie: a=b", "<script>", ""])
def test_malformed_or_long_request_ids_are_replaced(client, hostile):
    returned = client.get("/plain/", HTTP_X_REQUEST_ID=hostile)["X-Correlation-ID"]
    assert returned != hostile
    assert accept_correlation_id(returned) == returned


def test_forged_forwarded_for_is_ignored_without_trusted_proxies(client, audit_model):
    client.get("/emit/", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="1.2.3.4")
    row = audit_model.objects.get()
    assert row.client_ip == "198.51.100.7"
    assert row.additional_data["remote_addr"] == "198.51.100.7"


@override_settings(RAIL_DJANGO_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_trusted_proxy_chain_gives_rightmost_untrusted_hop(client, audit_model):
    # The client prepended a forged 6.6.6.6; the proxies appended the real hops.
    client.get("/emit/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.50, 10.0.0.9")
    row = audit_model.objects.get()
    assert row.client_ip == "203.0.113.50"
    assert row.additional_data["remote_addr"] == "10.0.0.2"


@override_settings(RAIL_DJANGO_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_forwarded_header_from_an_untrusted_peer_is_ignored(client, audit_model):
    client.get("/emit/", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="203.0.113.50")
    assert audit_model.objects.get().client_ip == "192.0.2.1"


def test_client_ip_resolution_edge_cases():
    trusted = ("10.0.0.1", "2001:db8::/32")
    assert resolve_client_ip({"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "[2001:db8::5]:443, 10.0.0.1"}, trusted) == ("2001:db8::5", "10.0.0.1")  # all hops ours: left-most
    assert resolve_client_ip({"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.1:8080"}, trusted) == ("203.0.113.1", "10.0.0.1")
    assert resolve_client_ip({"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "garbage"}, trusted) == ("10.0.0.1", "10.0.0.1")
    assert resolve_client_ip({"REMOTE_ADDR": "not-an-ip"}, trusted) == (None, None)
    assert resolve_client_ip({}, ()) == (None, None)


@override_settings(AUDIT_CAPTURE_CLIENT_IP=False, AUDIT_CAPTURE_USER_AGENT=False)
def test_privacy_settings_keep_no_ip_and_no_user_agent(client, audit_model, audit_log_file):
    client.get("/emit/", REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="Secret Browser/1.0")
    row = audit_model.objects.get()
    assert row.client_ip is None and row.user_agent == ""
    assert row.additional_data["remote_addr"] is None
    text = audit_log_file.read_text()
    assert "198.51.100.7" not in text and "Secret Browser" not in text


@pytest.mark.asyncio
@override_settings(RAIL_DJANGO_TRUSTED_PROXIES=["127.0.0.1"])
async def test_async_view_under_asgi_gets_request_context(async_client, audit_model):
    response = await async_client.get("/async-emit/", headers={"X-Request-ID": "asgi-1", "User-Agent": "AsyncUA/2"})
    assert await security.aflush(timeout=10)
    assert response["X-Correlation-ID"] == "asgi-1"
    row = await audit_model.objects.aget(event_type="ui.action")
    assert (row.correlation_id, row.request_path, row.request_method, row.user_agent) == (
        "asgi-1", "/async-emit/", "GET", "AsyncUA/2",
    )
    assert row.client_ip == "127.0.0.1"  # trusted, but it sent no X-Forwarded-For: the peer is the client
    from asgiref.sync import sync_to_async

    await sync_to_async(connections.close_all)()  # the ORM's sync thread outlives the test database otherwise


def test_token_api_binds_the_actor_mid_request(client, user, audit_model):
    client.post("/token-login/", {"username": "alice"})
    row = audit_model.objects.get(event_type="auth.token.issued")
    assert (row.user_id, row.username) == (str(user.pk), "alice")


def test_context_does_not_leak_between_requests(client, user, audit_model):
    client.post("/token-login/", {"username": "alice"})
    client.get("/emit/")  # anonymous request after the bound one
    assert get_current_context() is None
    assert audit_model.objects.get(event_type="data.read").user_id is None


def test_propagate_carries_the_context_into_a_thread_pool(rf, user, audit_model):
    with use_context({"correlation_id": "job-123"}) as ctx:
        ctx.bind_actor(user)

        def work(n):
            try:
                return security.emit(EventType.DATA_UPDATE, action=f"item {n}")
            finally:
                connections.close_all()  # pool threads outlive the test database otherwise

        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(propagate(work), range(3)))
    rows = audit_model.objects.filter(event_type="data.update")
    assert rows.count() == 3
    assert {(r.correlation_id, r.username) for r in rows} == {("job-123", "alice")}


def test_captured_context_is_json_and_restores_in_a_task(client, user, audit_model):
    import json

    client.force_login(user)
    with use_context({"correlation_id": "celery-parent", "user_id": str(user.pk), "username": "alice",
                      "client_ip": "203.0.113.8", "request_path": "/orders/"}):
        snapshot = json.loads(json.dumps(capture_context()))
    # ...later, in the worker:
    with use_context(snapshot):
        security.emit(EventType.DATA_EXPORT, action="nightly export")
    row = audit_model.objects.get(event_type="data.export")
    assert (row.correlation_id, row.username, row.client_ip, row.request_path) == (
        "celery-parent", "alice", "203.0.113.8", "/orders/",
    )


def test_bind_actor_outside_a_request_applies_to_that_context(user, audit_model):
    with use_context():
        bind_actor(user)
        security.emit(EventType.AUTHZ_ROLE_ASSIGNED, action="made admin")
    assert audit_model.objects.get().username == "alice"
