"""Lockout counting in Django's cache: failures per rule key, locks with progressive cool-off, status and reset.

Per rule key the cache (``AUDIT_CACHE_ALIAS``) holds three entries, each
under a SHA-256 digest of the rule and its values (no username in clear):
the failure count (created by the first failure, living
``AUDIT_LOCKOUT_FAILURE_WINDOW`` seconds), the lock (living the cool-off,
added atomically so two processes lock once) and the tier (how many
lockouts within ``AUDIT_LOCKOUT_TIER_MEMORY``). A failed login costs one
``incr`` per rule; checking an attempt costs one ``get_many``. Every lockout
is recorded as ``auth.login.locked`` and every reset as ``auth.login.unlocked``;
those events are also what ``status`` lists (the cache cannot be enumerated).
If the cache fails, logins are not locked (a warning is logged): a lockout
must never turn the cache's outage into everyone's.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from django.core.cache import caches

from rail_django.alerts.failed_logins import normalise_username
from rail_django.alerts.lockout_rules import MAX_USER_AGENT, Attempt, LockoutRules, get_rules, rule_name
from rail_django.capture.client_ip import resolve_client_ip
from rail_django.conf import get_config
from rail_django.events.types import EventType, Outcome, Severity
from rail_django.security.api import security

logger = logging.getLogger("rail_django.audit")
_PREFIX = "rail_django:lockout"
DENY_RULE = "deny_list"


@dataclass(frozen=True)
class Lock:
    """A lock in force: the rule, its values, when it ends and its tier."""

    rule: str
    subject: dict[str, str]
    until: float
    tier: int = 0

    @property
    def retry_after(self) -> int | None:
        """Whole seconds until the lock ends (``None`` for a deny list: it does not end)."""
        if self.rule == DENY_RULE:
            return None
        return max(1, math.ceil(self.until - time.time()))


def attempt_for(request: Any, username: str | None) -> Attempt:
    """The attempt's counted values: normalised username, client IP (``RAIL_DJANGO_TRUSTED_PROXIES``), agent."""
    meta = getattr(request, "META", None) or {}
    ip = resolve_client_ip(meta, get_config().trusted_proxies)[0] if meta else None
    agent = str(meta.get("HTTP_USER_AGENT", ""))[:MAX_USER_AGENT] or None
    return Attempt(username=normalise_username(username), ip_address=ip, user_agent=agent)


def _digest(rule: str, subject: dict[str, str]) -> str:
    text = "\x00".join([rule, *(f"{k}={v}" for k, v in sorted(subject.items()))])
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _keys(rule: str, subject: dict[str, str]) -> dict[str, str]:
    base = f"{_PREFIX}:{_digest(rule, subject)}"
    return {"failures": f"{base}:failures", "lock": f"{base}:lock", "tier": f"{base}:tier"}


def _cache() -> Any:
    return caches[get_config().cache_alias]


def _subjects(rules: LockoutRules, attempt: Attempt) -> list[tuple[str, dict[str, str]]]:
    found = []
    for combination in rules.combinations:
        subject = attempt.subject(combination)
        if subject is not None:
            found.append((rule_name(combination), subject))
    return found


def current_lock(attempt: Attempt) -> Lock | None:
    """The lock refusing this attempt now, if any (deny lists first; allow lists are never locked)."""
    rules = get_rules()
    if rules.denied(attempt):
        return Lock(DENY_RULE, {k: v for k, v in vars(attempt).items() if v and k != "user_agent"}, until=math.inf)
    if rules.allowed(attempt):
        return None
    subjects = _subjects(rules, attempt)
    if not subjects:
        return None
    wanted = {_keys(rule, subject)["lock"]: (rule, subject) for rule, subject in subjects}
    try:
        found = _cache().get_many(list(wanted))
    except Exception:
        logger.warning("Lockout check skipped: cache %r failed", get_config().cache_alias, exc_info=True)
        return None
    for cache_key, (rule, subject) in wanted.items():
        value = found.get(cache_key)
        if value:
            return Lock(rule, subject, until=float(value["until"]), tier=int(value["tier"]))
    return None


def _incr(cache: Any, key: str, timeout: int) -> int:
    if cache.add(key, 1, timeout):
        return 1
    try:
        return int(cache.incr(key))
    except ValueError:  # expired in between
        cache.add(key, 1, timeout)
        return 1


def count_failure(attempt: Attempt, request: Any = None) -> Lock | None:
    """Count one failed login against each rule; the lock it starts, if it reaches the limit."""
    rules = get_rules()
    if rules.allowed(attempt) or rules.denied(attempt):
        return None
    started = None
    try:
        cache = _cache()
        for rule, subject in _subjects(rules, attempt):
            keys = _keys(rule, subject)
            failures = _incr(cache, keys["failures"], rules.failure_window)
            if failures < rules.failure_limit:
                continue
            tier = _incr(cache, keys["tier"], rules.tier_memory)
            cooloff = rules.cooloff_for(tier)
            lock = Lock(rule, subject, until=time.time() + cooloff, tier=tier)
            if cache.add(keys["lock"], {"until": lock.until, "tier": tier}, cooloff):
                cache.delete(keys["failures"])  # after the cool-off, counting starts again
                _record_locked(lock, failures, cooloff, request)
                started = started or lock
    except Exception:
        logger.warning("Lockout counting skipped: cache %r failed", get_config().cache_alias, exc_info=True)
    return started


def _record_locked(lock: Lock, failures: int, cooloff: int, request: Any) -> None:
    security.emit(
        EventType.AUTH_LOGIN_LOCKED,
        request=request,
        outcome=Outcome.BLOCKED,
        severity=Severity.ERROR,
        action=f"Logins locked for {cooloff}s after {failures} failures ({lock.rule}, tier {lock.tier})",
        context={"lockout_rule": lock.rule, "subject": lock.subject, "failures": failures, "tier": lock.tier,
                 "cooloff_seconds": cooloff, "until": datetime.fromtimestamp(lock.until, timezone.utc).isoformat()},
        resource_type="lockout",
        resource_name=lock.rule,
    )


def clear_failures(attempt: Attempt) -> None:
    """Forget the failures (not the locks) of an attempt's keys: ``AUDIT_LOCKOUT_RESET_ON_SUCCESS``."""
    keys = [_keys(rule, subject)["failures"] for rule, subject in _subjects(get_rules(), attempt)]
    if keys:
        try:
            _cache().delete_many(keys)
        except Exception:
            logger.warning("Lockout reset skipped: cache %r failed", get_config().cache_alias, exc_info=True)


# -- status and reset (audit_management lockout, the admin action) -------------------------------


def _matches(subject: dict[str, str], ip: str | None, username: str | None) -> bool:
    """A lock matches when it holds at least one given value and no given value differs.

    ``--ip X`` matches every lock of X (any username), ``--username Y`` every lock of Y,
    both together the locks that would refuse Y at X (Y's own, X's own, and the pair).
    """
    if not ip and not username:
        return True  # no filter: every lock
    given = {"ip_address": ip, "username": username}
    present = [name for name, value in given.items() if value and name in subject]
    return bool(present) and all(subject[name] == given[name] for name in present)


def active_locks(ip: str | None = None, username: str | None = None) -> list[Lock]:
    """The locks in force, from the recent ``auth.login.locked`` events still locked in the cache."""
    from rail_django.models import get_audit_event_model

    username = normalise_username(username)
    since = datetime.now(timezone.utc) - timedelta(seconds=max(get_rules().cooloff) + 60)
    rows = (get_audit_event_model().objects.filter(event_type=EventType.AUTH_LOGIN_LOCKED.value, timestamp__gte=since)
            .order_by("-timestamp").values_list("additional_data", flat=True))
    seen, locks = set(), []
    for data in rows.iterator():
        context = (data or {}).get("context") or {}
        rule, subject = context.get("lockout_rule"), context.get("subject")
        if not isinstance(subject, dict) or not rule or not _matches(subject, ip, username):
            continue
        digest = _digest(rule, subject)
        if digest in seen:
            continue
        seen.add(digest)
        value = _cache().get(_keys(rule, subject)["lock"])
        if value:
            locks.append(Lock(rule, subject, until=float(value["until"]), tier=int(value["tier"])))
    return locks


def reset(ip: str | None = None, username: str | None = None, *, via: str, request: Any = None) -> list[Lock]:
    """Lift the locks (and forget the failures and tiers) of ``ip`` and/or ``username``; records each lift."""
    if not ip and not username:
        raise ValueError("Give an IP address, a username, or both.")
    locks = active_locks(ip, username)
    attempt = Attempt(username=normalise_username(username), ip_address=ip, user_agent=None)
    direct = _subjects(get_rules(), attempt)  # keys that can be named from the values given, locked or not
    keys = [key for lock in locks for key in _keys(lock.rule, lock.subject).values()]
    keys += [key for rule, subject in direct for key in _keys(rule, subject).values()]
    _cache().delete_many(keys)
    for lock in locks:
        security.emit(
            EventType.AUTH_LOGIN_UNLOCKED,
            request=request,
            outcome=Outcome.SUCCESS,
            action=f"Lockout lifted ({lock.rule}) through {via}",
            context={"lockout_rule": lock.rule, "subject": lock.subject, "tier": lock.tier, "reset_via": via},
            resource_type="lockout",
            resource_name=lock.rule,
        )
    return locks
