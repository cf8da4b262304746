"""The one place that decides a request's client IP.

Forwarded headers are believed only when the connecting peer
(``REMOTE_ADDR``) is one of ``RAIL_DJANGO_TRUSTED_PROXIES``; the client is then
the right-most ``X-Forwarded-For`` hop that is not itself a trusted proxy, so
a client cannot forge its address by prepending entries. Header tokens are
parsed (ports, brackets, IPv4-mapped IPv6) with python-ipware, the parser
behind django-ipware, whose own resolution trusts the headers without
checking the peer and so is not used for the decision.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from python_ipware.modern.parsers import parse_ip, split_proxy_chain

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def parse_trusted_proxies(proxies: tuple[str, ...]) -> tuple[IpNetwork, ...]:
    """Parse IPs and CIDRs; raises ``ValueError`` on an invalid entry."""
    return tuple(ipaddress.ip_network(str(p).strip(), strict=False) for p in proxies)


def _is_trusted(ip: Any, networks: tuple[IpNetwork, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in networks)


def resolve_client_ip(meta: Mapping[str, Any], trusted_proxies: tuple[str, ...]) -> tuple[str | None, str | None]:
    """Return ``(client_ip, remote_addr)`` for a request's ``META``."""
    raw_remote = meta.get("REMOTE_ADDR") or None
    forwarded = meta.get("HTTP_X_FORWARDED_FOR") if trusted_proxies else None
    if not isinstance(raw_remote, str | None) or not isinstance(forwarded, str | None):
        return _resolve.__wrapped__(raw_remote, forwarded, trusted_proxies)
    return _resolve(raw_remote, forwarded, trusted_proxies)


# The same few peers (proxies, load balancers) and client addresses come back again and again:
# parsing them costs ~10 us per event inside a request, a cache hit well under one.
@lru_cache(maxsize=4096)
def _resolve(raw_remote: str | None, forwarded: str | None, trusted_proxies: tuple[str, ...]) -> tuple[str | None, str | None]:
    remote = parse_ip(raw_remote) if raw_remote else None
    # An unparseable peer (a unix socket, a test harness) is no IP: store none.
    remote_text = str(remote) if remote is not None else None
    if remote is None or not trusted_proxies:
        return remote_text, remote_text
    try:
        networks = parse_trusted_proxies(trusted_proxies)
    except ValueError:  # reported by rail_django.E012; never trust a broken list
        return remote_text, remote_text
    if not _is_trusted(remote, networks):
        return remote_text, remote_text
    chain = split_proxy_chain(forwarded, strict=False) if forwarded else None
    if not chain:
        return remote_text, remote_text
    for hop in reversed(chain):
        if not _is_trusted(hop, networks):
            return str(hop), remote_text
    # Every hop is one of our proxies: the left-most is the closest we know.
    return str(chain[0]), remote_text
