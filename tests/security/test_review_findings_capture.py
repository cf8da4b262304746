"""The security review's request-capture findings (8, 11, 12, 13, and the user-agent note), each proven over HTTP."""

from __future__ import annotations

import http.client
import io
import json
import tracemalloc

import pytest
from django.core.cache import cache
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from rail_django.alerts import failed_logins as alerts
from rail_django.capture.auth import username_hash
from rail_django.capture.client_ip import resolve_client_ip

pytestmark = pytest.mark.django_db(transaction=True)

TYPED_PASSWORD = "Tr0ub4dor-and-3-horses"  # typed into the username field by mistake


def _traced_growth(work) -> int:
    """Bytes still allocated after ``work()`` (what a cache kept), measured with tracemalloc."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        work()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


# -- 8: the client-IP cache is keyed only on what is trusted, and bounded ---------------------------------------------


def test_unique_large_forwarded_headers_from_an_untrusted_peer_do_not_grow_memory():
    trusted = ("10.0.0.0/8",)

    def flood():
        for i in range(1000):  # 54 KB each: 54 MB if any of them were kept
            meta = {"REMOTE_ADDR": "198.51.100.7", "HTTP_X_FORWARDED_FOR": f"{i}, " + "6" * 54_000}
            assert resolve_client_ip(meta, trusted) == ("198.51.100.7", "198.51.100.7")

    assert _traced_growth(flood) < 1_000_000


def test_unique_large_forwarded_headers_from_a_trusted_proxy_keep_memory_bounded():
    trusted = ("10.0.0.0/8",)
    hops = ", ".join(f"10.{j % 256}.{j // 256}.1" for j in range(3_600))  # 54 KB of proxy hops

    def flood():
        for i in range(1000):  # unique per request (its right-most hop), then one huge token
            meta = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": f"203.0.113.9, {hops}, 10.255.{i % 256}.{i // 256}"}
            resolve_client_ip(meta, trusted)
            resolve_client_ip({"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "7" * 54_000 + str(i)}, trusted)

    assert _traced_growth(flood) < 4_000_000  # at most 4,096 short tokens, whatever was sent


# -- 11: a trusted network that is the internet; an unparseable hop ---------------------------------------------------


@pytest.mark.parametrize("network", ["0.0.0.0/0", "::/0", "0.0.0.0/1", "1.0.0.0/7", "2000::/3", "2001::/15"])
def test_trusting_the_internet_as_a_proxy_fails_check(network):
    with override_settings(RAIL_DJANGO_TRUSTED_PROXIES=["10.0.0.0/8", network]):
        errors = [m for m in run_checks() if m.id == "rail_django.E019"]
    [error] = errors
    assert network in error.msg and "RAIL_DJANGO_TRUSTED_PROXIES" in error.msg


@pytest.mark.parametrize("network", ["10.0.0.0/8", "fc00::/7", "2001:db8::/32", "192.168.1.7", "100.64.0.0/10"])
def test_proxy_networks_of_a_real_deployment_pass_check(network):
    with override_settings(RAIL_DJANGO_TRUSTED_PROXIES=[network]):
        assert [m for m in run_checks() if m.id.startswith("rail_django.E01")] == []


def test_security_check_calls_an_internet_wide_proxy_list_critical():
    out = io.StringIO()
    with override_settings(RAIL_DJANGO_TRUSTED_PROXIES=["0.0.0.0/0"]), pytest.raises(CommandError):
        call_command("security_check", "--format", "json", stdout=out)
    found = {f["id"]: f["severity"] for f in json.loads(out.getvalue())["findings"]}
    assert found["audit.proxies"] == "critical" and found["rail_django.E019"] == "critical"


@override_settings(RAIL_DJANGO_TRUSTED_PROXIES=["0.0.0.0/0"])
def test_an_internet_wide_proxy_list_is_not_used_meanwhile(client, audit_model):
    client.get("/emit/", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert audit_model.objects.get().client_ip == "198.51.100.7"


@override_settings(RAIL_DJANGO_TRUSTED_PROXIES=["10.0.0.0/8"])
@pytest.mark.parametrize(
    ("forwarded", "client_ip"),
    [("1.2.3.4, unknown", "10.0.0.2"),  # the proxy did not know the client: it is not 1.2.3.4
     ("1.2.3.4, unknown, 10.0.0.9", "10.0.0.9"),  # the last trusted hop before the unknown one
     ("1.2.3.4, , 203.0.113.5", "203.0.113.5"),  # the right-most untrusted hop is found first
     ("1.2.3.4, " + "9" * 70, "10.0.0.2")],  # an over-long token is no address
)
def test_an_unparseable_forwarded_entry_stops_the_walk(client, audit_model, forwarded, client_ip):
    client.get("/emit/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)
    row = audit_model.objects.get()
    assert (row.client_ip, row.additional_data["remote_addr"]) == (client_ip, "10.0.0.2")


# -- 12: a client cannot choose its correlation id ---------------------------------------------------------------------


def _correlation(client, peer: str, **headers) -> str:
    response = client.get("/emit/", REMOTE_ADDR=peer, **headers)
    return response["X-Correlation-ID"]


def test_an_incoming_request_id_from_a_client_is_replaced(client, audit_model):
    assert _correlation(client, "198.51.100.7", HTTP_X_REQUEST_ID="victim-request-1") != "victim-request-1"
    assert _correlation(client, "198.51.100.7", HTTP_X_CORRELATION_ID="victim-request-1") != "victim-request-1"
    assert not audit_model.objects.filter(correlation_id="victim-request-1").exists()


@override_settings(RAIL_DJANGO_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_an_incoming_request_id_is_kept_only_from_a_trusted_proxy(client, audit_model):
    assert _correlation(client, "198.51.100.7", HTTP_X_REQUEST_ID="from-client") != "from-client"
    assert _correlation(client, "10.0.0.2", HTTP_X_REQUEST_ID="from-proxy") == "from-proxy"
    assert audit_model.objects.filter(correlation_id="from-proxy").count() == 1
    assert not audit_model.objects.filter(correlation_id="from-client").exists()


@pytest.mark.asyncio
async def test_an_incoming_request_id_from_a_client_is_replaced_under_asgi(async_client):
    response = await async_client.get("/plain/", headers={"X-Request-ID": "asgi-victim"})
    assert response["X-Correlation-ID"] != "asgi-victim"


def test_the_setting_can_accept_ids_from_any_peer_or_none(client):
    with override_settings(RAIL_DJANGO_ACCEPT_REQUEST_ID_FROM="any"):
        assert _correlation(client, "198.51.100.7", HTTP_X_REQUEST_ID="any-peer") == "any-peer"
    with override_settings(RAIL_DJANGO_ACCEPT_REQUEST_ID_FROM="none", RAIL_DJANGO_TRUSTED_PROXIES=["10.0.0.0/8"]):
        assert _correlation(client, "10.0.0.2", HTTP_X_REQUEST_ID="from-proxy") != "from-proxy"


# -- 13: a password typed as the username is not kept in clear ---------------------------------------------------------


def _fail_login(client, username: str, ip: str = "203.0.113.9") -> None:
    response = client.post("/login/", {"username": username, "password": "wrong-password"}, REMOTE_ADDR=ip)
    assert response.status_code == 200


def _everything_stored(audit_model, audit_log_file) -> str:
    rows = json.dumps([
        {f.name: str(getattr(r, f.name)) for f in audit_model._meta.fields} for r in audit_model.objects.all()
    ])
    summary = io.StringIO()
    call_command("audit_management", "summary", "--format", "json", stdout=summary)
    text = io.StringIO()
    call_command("audit_management", "summary", stdout=text)
    return rows + audit_log_file.read_text() + summary.getvalue() + text.getvalue()


def test_a_password_typed_as_the_username_is_stored_as_a_keyed_hash(client, user, audit_model, audit_log_file):
    _fail_login(client, TYPED_PASSWORD)
    _fail_login(client, "Alice")  # an existing user, in another case: readable evidence

    stored = [r.additional_data["context"]["username_attempted"] for r in audit_model.objects.order_by("id")]
    assert stored == [username_hash(TYPED_PASSWORD), "Alice"]
    assert stored[0].startswith("hash:") and len(stored[0]) == len("hash:") + 32
    assert TYPED_PASSWORD not in _everything_stored(audit_model, audit_log_file)
    assert TYPED_PASSWORD.lower() not in _everything_stored(audit_model, audit_log_file).lower()


def test_the_hash_groups_one_name_in_any_case_and_depends_on_the_secret_key(settings):
    assert username_hash(" Mallory ") == username_hash("mallory")
    before = username_hash("mallory")
    settings.SECRET_KEY = "another-secret-key-" + "y" * 40
    assert username_hash("mallory") != before


def test_hash_mode_hashes_every_name_and_always_mode_keeps_the_text(client, user, audit_model, settings):
    settings.AUDIT_ATTEMPTED_USERNAME = "hash"
    _fail_login(client, "alice")
    settings.AUDIT_ATTEMPTED_USERNAME = "always"
    _fail_login(client, TYPED_PASSWORD)
    stored = [r.additional_data["context"]["username_attempted"] for r in audit_model.objects.order_by("id")]
    assert stored == [username_hash("alice"), TYPED_PASSWORD]


def test_failed_logins_are_still_counted_per_attempted_name(client, audit_model, settings):
    cache.clear()
    alerts.counter.reset()
    settings.AUDIT_ALERT_THRESHOLDS = {"failed_logins_per_ip": 100, "failed_logins_per_user": 3,
                                       "suspicious_activity_window": 300}
    for i, typed in enumerate((TYPED_PASSWORD, TYPED_PASSWORD.upper(), f" {TYPED_PASSWORD} ")):
        _fail_login(client, typed, ip=f"198.51.100.{i + 1}")

    [alert] = audit_model.objects.filter(event_type="security.alert")
    assert alert.additional_data["context"]["rule"] == "failed_logins_per_user"
    assert alert.additional_data["context"]["key"] == username_hash(TYPED_PASSWORD)
    alerts.counter.reset()


# -- info: UTF-8 user agents ----------------------------------------------------------------------------------------


def _get_with_raw_user_agent(live_server, raw: bytes) -> str:
    connection = http.client.HTTPConnection(live_server.thread.host, live_server.thread.port, timeout=30)
    try:
        connection.putrequest("GET", "/emit/")
        connection.putheader("User-Agent", raw)  # bytes go on the wire as they are
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 200
        return json.loads(response.read())["event_id"]
    finally:
        connection.close()


def test_a_utf8_user_agent_is_stored_as_sent(live_server, audit_model):
    utf8 = "Müller-Browser/1.0 (日本語; ✓)"
    latin1_only = "caf\xe9-agent/2"  # a latin-1 byte that is not UTF-8: kept as the server decoded it
    first = _get_with_raw_user_agent(live_server, utf8.encode("utf-8"))
    second = _get_with_raw_user_agent(live_server, latin1_only.encode("latin-1"))
    assert audit_model.objects.get(event_id=first).user_agent == utf8
    assert audit_model.objects.get(event_id=second).user_agent == latin1_only
