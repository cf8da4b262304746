"""``audit_management lockout`` and the admin action: list and lift login lockouts (thin over the store)."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timezone
from typing import Any

from rail_django.alerts.lockout_store import Lock, active_locks, reset


def _valid_ip(ip: str | None) -> str | None:
    if ip is None:
        return None
    try:
        return str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        raise ValueError(f"{ip!r} is not an IP address.") from None


def describe_lock(lock: Lock) -> str:
    """One line: rule, values, tier, time left."""
    values = " ".join(f"{name}={value}" for name, value in lock.subject.items())
    until = datetime.fromtimestamp(lock.until, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{lock.rule}: {values} (tier {lock.tier}, {lock.retry_after}s left, until {until})"


def list_lockouts(ip: str | None = None, username: str | None = None) -> list[Lock]:
    return active_locks(_valid_ip(ip), username)


def lift_lockouts(ip: str | None, username: str | None, *, via: str, request: Any = None) -> list[Lock]:
    """Lift the matching locks; each lift is recorded as ``auth.login.unlocked``."""
    return reset(_valid_ip(ip), username, via=via, request=request)
