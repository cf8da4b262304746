"""``resolve_client_ip``: which address is believed, how far the walk goes, what it never does."""

from __future__ import annotations

import ipaddress

import pytest

from rail_django.capture.client_ip import (
    MAX_FORWARDED_HOPS,
    is_too_wide,
    peer_is_trusted,
    resolve_client_ip,
)

TRUSTED = ("10.0.0.0/8", "2001:db8::/32")


def _resolve(forwarded, remote="10.0.0.2", trusted=TRUSTED):
    return resolve_client_ip({"REMOTE_ADDR": remote, "HTTP_X_FORWARDED_FOR": forwarded}, trusted)


def test_the_right_most_untrusted_hop_is_the_client():
    assert _resolve("6.6.6.6, 203.0.113.50, 10.0.0.9") == ("203.0.113.50", "10.0.0.2")
    assert _resolve("[2001:db8::7]:443, 198.51.100.1:8080, 2001:db8::9") == ("198.51.100.1", "10.0.0.2")
    assert _resolve("::ffff:203.0.113.50") == ("203.0.113.50", "10.0.0.2")  # IPv4-mapped is the IPv4 client


def test_only_the_right_most_hops_are_read():
    proxies = ", ".join(f"10.1.{i // 256}.{i % 256}" for i in range(1000))
    client, _ = _resolve(f"203.0.113.50, {proxies}")
    # All the examined hops are proxies: the left-most of the examined ones is the closest known.
    assert client == f"10.1.{(1000 - MAX_FORWARDED_HOPS) // 256}.{(1000 - MAX_FORWARDED_HOPS) % 256}"
    assert _resolve("203.0.113.50, " + ", ".join(["10.0.0.9"] * (MAX_FORWARDED_HOPS - 1))) == ("203.0.113.50", "10.0.0.2")


def test_headers_are_never_read_from_an_untrusted_or_unparseable_peer():
    assert _resolve("203.0.113.50", remote="198.51.100.7") == ("198.51.100.7", "198.51.100.7")
    assert _resolve("203.0.113.50", remote="unix:/run/app.sock") == (None, None)
    assert _resolve("203.0.113.50", remote="1" * 100) == (None, None)
    assert _resolve("203.0.113.50", trusted=()) == ("10.0.0.2", "10.0.0.2")


@pytest.mark.parametrize("value", [None, 42, b"203.0.113.50", ["203.0.113.50"]])
def test_values_that_are_not_text_are_no_header(value):
    assert _resolve(value) == ("10.0.0.2", "10.0.0.2")
    assert resolve_client_ip({"REMOTE_ADDR": value}, TRUSTED) == (None, None)


def test_a_broken_proxy_list_trusts_nobody():
    assert _resolve("203.0.113.50", trusted=("10.0.0.0/33",)) == ("10.0.0.2", "10.0.0.2")


def test_peer_is_trusted():
    assert peer_is_trusted({"REMOTE_ADDR": "10.9.9.9"}, TRUSTED)
    assert not peer_is_trusted({"REMOTE_ADDR": "198.51.100.7"}, TRUSTED)
    assert not peer_is_trusted({"REMOTE_ADDR": "10.9.9.9"}, ())
    assert not peer_is_trusted({}, TRUSTED)


@pytest.mark.parametrize(
    ("network", "too_wide"),
    [("0.0.0.0/0", True), ("0.0.0.0/7", True), ("10.0.0.0/8", False), ("::/0", True), ("2000::/3", True),
     ("2001:db8::/16", False), ("fc00::/7", False), ("fd00::/8", False), ("::1/128", False)],
)
def test_what_is_too_wide_to_trust(network, too_wide):
    assert is_too_wide(ipaddress.ip_network(network, strict=False)) is too_wide
