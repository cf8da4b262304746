"""The one place that decides a request's client IP.

Forwarded headers are believed only when the connecting peer
(``REMOTE_ADDR``) is one of ``RAIL_DJANGO_TRUSTED_PROXIES``; the client is then
the right-most ``X-Forwarded-For`` hop that is not itself a trusted proxy, so
a client cannot forge its address by prepending entries. The walk from the
right stops at the first entry it cannot parse (``unknown``, garbage, an
over-long token): what lies to its left was written by someone no trusted
proxy vouched for, so the client is then the last trusted address before it
(the peer itself when the right-most entry is unparseable). Header tokens
are parsed (ports, brackets, IPv4-mapped IPv6) with python-ipware, the parser
behind django-ipware, whose own resolution trusts the headers without
checking the peer and so is not used for the decision.

Memory is bounded whatever the client sends: only short tokens (a peer
address, one hop) are cached, never a whole header, and at most
:data:`MAX_FORWARDED_HOPS` hops are examined.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from python_ipware.modern.parsers import parse_ip

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Hops of ``X-Forwarded-For`` examined from the right; no proxy chain is longer.
MAX_FORWARDED_HOPS = 16
#: The longest token that can be an address (``[IPv6]:port`` is at most 53 characters).
MAX_HOP_LENGTH = 64
#: Trusting a network wider than these lets anyone on the internet forge their address: the largest
#: private ranges are 10.0.0.0/8 and (IPv6, unique local) fc00::/7; public IPv6 proxies fit in a /16.
MIN_IPV4_PREFIX = 8
MIN_IPV6_PREFIX = 16
_IPV6_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")


@lru_cache(maxsize=16)
def parse_trusted_proxies(proxies: tuple[str, ...]) -> tuple[IpNetwork, ...]:
    """Parse IPs and CIDRs; raises ``ValueError`` on an invalid entry."""
    return tuple(ipaddress.ip_network(str(p).strip(), strict=False) for p in proxies)


def is_too_wide(network: IpNetwork) -> bool:
    """Whether trusting ``network`` as a proxy would trust a large part of the internet.

    IPv4 networks wider than /8 and IPv6 networks wider than /16 (except inside
    the unique-local fc00::/7) are too wide: ``0.0.0.0/0`` or ``::/0`` would let
    every client write its own address.
    """
    if network.version == 4:
        return network.prefixlen < MIN_IPV4_PREFIX
    return network.prefixlen < MIN_IPV6_PREFIX and not network.subnet_of(_IPV6_UNIQUE_LOCAL)


def _is_trusted(ip: Any, networks: tuple[IpNetwork, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in networks)


def _networks(trusted_proxies: tuple[str, ...]) -> tuple[IpNetwork, ...]:
    try:
        return parse_trusted_proxies(trusted_proxies)
    except ValueError:  # reported by rail_django.E012; never trust a broken list
        return ()


Classify = Callable[[str], tuple[str | None, bool]]


@lru_cache(maxsize=16)
def _classifier(trusted_proxies: tuple[str, ...]) -> Classify:
    """The token classifier for one proxy list: ``token -> (address text or None, is a trusted proxy)``."""
    networks = _networks(trusted_proxies)

    # The same few peers and hops come back again and again: parsing costs a few microseconds per
    # event, a cache hit well under one. Keys are single tokens of at most MAX_HOP_LENGTH characters.
    @lru_cache(maxsize=4096)
    def classify(token: str) -> tuple[str | None, bool]:
        ip = parse_ip(token)
        if ip is None:
            return None, False
        return str(ip), _is_trusted(ip, networks)

    return classify


def _lookup(classify: Classify, token: Any) -> tuple[str | None, bool]:
    if not isinstance(token, str) or len(token) > MAX_HOP_LENGTH:
        return None, False  # never cached: an unbounded key would grow memory
    return classify(token)


def peer_is_trusted(meta: Mapping[str, Any], trusted_proxies: tuple[str, ...]) -> bool:
    """Whether the connecting peer (``REMOTE_ADDR``) is one of ``trusted_proxies``."""
    return bool(trusted_proxies) and _lookup(_classifier(trusted_proxies), meta.get("REMOTE_ADDR") or "")[1]


def resolve_client_ip(meta: Mapping[str, Any], trusted_proxies: tuple[str, ...]) -> tuple[str | None, str | None]:
    """Return ``(client_ip, remote_addr)`` for a request's ``META``."""
    classify = _classifier(trusted_proxies)
    # An unparseable peer (a unix socket, a test harness) is no IP: store none.
    remote, remote_trusted = _lookup(classify, meta.get("REMOTE_ADDR") or "")
    if remote is None or not remote_trusted:
        return remote, remote  # the header is never looked at, let alone cached
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    if not isinstance(forwarded, str) or not forwarded.strip():
        return remote, remote
    hops = forwarded.rsplit(",", MAX_FORWARDED_HOPS)
    if len(hops) > MAX_FORWARDED_HOPS:
        hops = hops[1:]  # the first part holds the unexamined rest
    client = remote
    for token in reversed(hops):
        address, trusted = _lookup(classify, token)
        if address is None:
            break  # unparseable: nothing to its left is vouched for
        client = address
        if not trusted:
            break
    # Every examined hop is one of our proxies: the left-most is the closest we know.
    return client, remote
