"""Lockout rules, read from the ``AUDIT_LOCKOUT_*`` settings (the django-axes model).

A rule is one combination of the attempt's parameters -- ``"username"``,
``"ip_address"``, ``"user_agent"`` -- and a failed login counts once against
each rule of ``AUDIT_LOCKOUT_PARAMETERS`` (default ``[["username",
"ip_address"]]``: the pair, so an attacker elsewhere cannot lock a victim
out). A rule's key reaching ``AUDIT_LOCKOUT_FAILURE_LIMIT`` failures within
``AUDIT_LOCKOUT_FAILURE_WINDOW`` seconds is locked for a cool-off that grows
with each lockout of that key within ``AUDIT_LOCKOUT_TIER_MEMORY`` seconds
(``AUDIT_LOCKOUT_COOLOFF``, one entry per tier, the last one repeating).
Allow lists are never locked, deny lists always refused. Usernames are
normalised (NFKC, case-folded, stripped) before counting and comparing.
The counting itself is in :mod:`rail_django.alerts.lockout_store`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.checks import Warning

from rail_django.alerts.failed_logins import normalise_username
from rail_django.conf import on_config_change, read_setting

PARAMETERS = ("username", "ip_address", "user_agent")
MIDDLEWARE_PATH = "rail_django.alerts.lockout.LockoutMiddleware"
#: Longest user agent counted (the key holds a digest; this bounds the hashing work).
MAX_USER_AGENT = 512


@dataclass(frozen=True)
class LockoutRules:
    """The parsed ``AUDIT_LOCKOUT_*`` settings."""

    combinations: tuple[tuple[str, ...], ...]
    failure_limit: int
    failure_window: int
    cooloff: tuple[int, ...]
    tier_memory: int
    allow_ips: tuple[Any, ...]
    allow_usernames: frozenset[str]
    deny_ips: tuple[Any, ...]
    deny_usernames: frozenset[str]
    reset_on_success: bool
    template: str | None

    def cooloff_for(self, tier: int) -> int:
        """Seconds of the ``tier``-th lockout (1-based) of one key."""
        return self.cooloff[min(max(tier, 1), len(self.cooloff)) - 1]

    def allowed(self, attempt: Attempt) -> bool:
        return _in_networks(attempt.ip_address, self.allow_ips) or (attempt.username in self.allow_usernames)

    def denied(self, attempt: Attempt) -> bool:
        return _in_networks(attempt.ip_address, self.deny_ips) or (attempt.username in self.deny_usernames)


@dataclass(frozen=True)
class Attempt:
    """What a login attempt is counted by: the normalised username, the client IP, the user agent."""

    username: str | None
    ip_address: str | None
    user_agent: str | None

    def subject(self, combination: tuple[str, ...]) -> dict[str, str] | None:
        """``{parameter: value}`` of one rule, or ``None`` when the attempt lacks one of them."""
        values = {name: getattr(self, name) for name in combination}
        return values if all(values.values()) else None


def rule_name(combination: tuple[str, ...]) -> str:
    return "+".join(combination)


def _in_networks(ip: str | None, networks: tuple[Any, ...]) -> bool:
    if not ip or not networks:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


# -- reading and checking the settings ----------------------------------------------------------


def _positive(name: str, errors: list[tuple[str, str]]) -> int:
    value = read_setting(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        errors.append((name, f"{value!r} is not a whole number of at least 1"))
        return 1
    return value


def _combinations(errors: list[tuple[str, str]]) -> tuple[tuple[str, ...], ...]:
    value = read_setting("AUDIT_LOCKOUT_PARAMETERS")
    found = []
    if isinstance(value, (list, tuple)) and value:
        for item in value:
            combination = (item,) if isinstance(item, str) else tuple(item) if isinstance(item, (list, tuple)) else ()
            if not combination or any(p not in PARAMETERS for p in combination) or len(set(combination)) != len(combination):
                errors.append(("AUDIT_LOCKOUT_PARAMETERS", f"{item!r} is not one of {PARAMETERS} or a list of them"))
                continue
            found.append(combination)
    else:
        errors.append(("AUDIT_LOCKOUT_PARAMETERS", f"{value!r} is not a non-empty list"))
    return tuple(found) or (("username", "ip_address"),)


def _networks(name: str, errors: list[tuple[str, str]]) -> tuple[Any, ...]:
    value = read_setting(name)
    if not isinstance(value, (list, tuple)):
        errors.append((name, f"{value!r} is not a list of IP addresses or networks"))
        return ()
    networks = []
    for item in value:
        try:
            networks.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            errors.append((name, f"{item!r} is not an IP address or network (CIDR)"))
    return tuple(networks)


def _usernames(name: str, errors: list[tuple[str, str]]) -> frozenset[str]:
    value = read_setting(name)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        errors.append((name, f"{value!r} is not a list of usernames"))
        return frozenset()
    return frozenset(filter(None, (normalise_username(v) for v in value)))


def parse_rules() -> tuple[LockoutRules, list[tuple[str, str]]]:
    """The rules (invalid values replaced by defaults) and ``(setting, problem)`` for each invalid value."""
    errors: list[tuple[str, str]] = []
    cooloff = read_setting("AUDIT_LOCKOUT_COOLOFF")
    if isinstance(cooloff, int) and not isinstance(cooloff, bool):
        cooloff = [cooloff]
    if not (isinstance(cooloff, (list, tuple)) and cooloff
            and all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in cooloff)):
        errors.append(("AUDIT_LOCKOUT_COOLOFF", f"{cooloff!r} is not a non-empty list of seconds (whole numbers >= 1)"))
        cooloff = [300]
    reset = read_setting("AUDIT_LOCKOUT_RESET_ON_SUCCESS")
    if not isinstance(reset, bool):
        errors.append(("AUDIT_LOCKOUT_RESET_ON_SUCCESS", f"{reset!r} is not True or False"))
    template = read_setting("AUDIT_LOCKOUT_TEMPLATE")
    if template is not None and not (isinstance(template, str) and template):
        errors.append(("AUDIT_LOCKOUT_TEMPLATE", f"{template!r} is not None or a template name"))
        template = None
    rules = LockoutRules(
        combinations=_combinations(errors),
        failure_limit=_positive("AUDIT_LOCKOUT_FAILURE_LIMIT", errors),
        failure_window=_positive("AUDIT_LOCKOUT_FAILURE_WINDOW", errors),
        cooloff=tuple(cooloff),
        tier_memory=_positive("AUDIT_LOCKOUT_TIER_MEMORY", errors),
        allow_ips=_networks("AUDIT_LOCKOUT_ALLOW_IPS", errors),
        allow_usernames=_usernames("AUDIT_LOCKOUT_ALLOW_USERNAMES", errors),
        deny_ips=_networks("AUDIT_LOCKOUT_DENY_IPS", errors),
        deny_usernames=_usernames("AUDIT_LOCKOUT_DENY_USERNAMES", errors),
        reset_on_success=reset is True,
        template=template,
    )
    return rules, errors


_rules: LockoutRules | None = None


def get_rules() -> LockoutRules:
    """The cached rules (dropped when settings change)."""
    global _rules
    if _rules is None:
        _rules = parse_rules()[0]
    return _rules


def _forget_rules() -> None:
    global _rules
    _rules = None


on_config_change(_forget_rules)

#: The check id of each setting (``docs/configuration.md`` lists them).
CHECK_IDS = {
    "AUDIT_LOCKOUT_PARAMETERS": "rail_django.E062",
    "AUDIT_LOCKOUT_FAILURE_LIMIT": "rail_django.E063",
    "AUDIT_LOCKOUT_FAILURE_WINDOW": "rail_django.E063",
    "AUDIT_LOCKOUT_TIER_MEMORY": "rail_django.E063",
    "AUDIT_LOCKOUT_COOLOFF": "rail_django.E064",
    "AUDIT_LOCKOUT_ALLOW_IPS": "rail_django.E065",
    "AUDIT_LOCKOUT_DENY_IPS": "rail_django.E065",
    "AUDIT_LOCKOUT_ALLOW_USERNAMES": "rail_django.E066",
    "AUDIT_LOCKOUT_DENY_USERNAMES": "rail_django.E066",
    "AUDIT_LOCKOUT_RESET_ON_SUCCESS": "rail_django.E067",
    "AUDIT_LOCKOUT_TEMPLATE": "rail_django.E068",
}


def check_no_code_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """System checks of issue 14's settings (registered in ``ready()``)."""
    messages: list[Any] = []
    if read_setting("AUDIT_LOCKOUT_ENABLED") is True and MIDDLEWARE_PATH not in getattr(settings, "MIDDLEWARE", []):
        messages.append(Warning(
            f"AUDIT_LOCKOUT_ENABLED is True but {MIDDLEWARE_PATH!r} is not in MIDDLEWARE: locked-out logins are "
            "refused, but answered like any failed login instead of HTTP 429 with Retry-After.",
            id="rail_django.W060",
        ))
    return messages
