"""Failed-login alerts: sliding-window counters kept in Django's cache.

Every failed login counts once against its client IP and once against the
attempted username. The counts live in the cache named by
``AUDIT_CACHE_ALIAS`` (so several worker processes behind a shared Redis or
Memcached see one count) as ten sub-buckets per window: the count of the last
``suspicious_activity_window`` seconds is the sum of the last ten buckets,
which slides with a granularity of a tenth of the window.

Reaching ``failed_logins_per_ip`` or ``failed_logins_per_user`` emits one
``security.alert`` event (severity critical) and sends
:data:`rail_django.signals.security_alert`. An ``alerted`` marker
added atomically (``cache.add``) for one window makes that happen once per
key per window, across processes. Lockouts follow their own rules
(:mod:`rail_django.alerts.lockout_rules`); this module only carries the
"refused by the lockout" flag to the ``user_login_failed`` receiver.

A failed login costs, per rule, one ``incr`` of the current bucket (plus an
``add`` when the bucket starts). The buckets before it are closed (no
process increments a past bucket), so each process reads them, and the
marker, with one ``get_many`` only at its first failure in a bucket, and
remembers their total until the bucket ends. A current count lower than the
one this process last saw means the cache lost its data (cleared, restarted)
and makes it read again. When the cache fails (Redis down) counting
falls back to this process's memory, a warning is logged once, and the
shared cache is not tried again for :data:`CACHE_RETRY_SECONDS`; so at most
one request per process and retry period waits for a dead cache, and only as
long as the cache's own socket timeouts allow (``CACHES[...]["OPTIONS"]``,
see ``docs/alerts.md``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import threading
import time
import unicodedata
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache

from rail_django.conf import get_config
from rail_django.delivery.dispatcher import dispatcher
from rail_django.events.redaction import current_redactor
from rail_django.events.types import EventType, Outcome, SecurityEvent, Severity
from rail_django.security.api import security
from rail_django.signals import security_alert

logger = logging.getLogger("rail_django.audit")

T = TypeVar("T")

RULE_PER_IP = "failed_logins_per_ip"
RULE_PER_USER = "failed_logins_per_user"
#: Sub-buckets per window: the window slides by a tenth of its length.
SUB_BUCKETS = 10
#: Seconds a process counts in its own memory after the shared cache failed.
CACHE_RETRY_SECONDS = 30.0
#: Counters whose closed buckets a process remembers (one small object each).
MAX_BUCKET_MEMOS = 10_000
_KEY_PREFIX = "rail_django:failed_logins"


@dataclass(frozen=True)
class Lockout:
    """A refused login: the lockout rule and key that refused it."""

    rule: str
    key: str


_refused: ContextVar[Lockout | None] = ContextVar("rail_django_login_lockout", default=None)


def normalise_username(username: str | None) -> str | None:
    """The per-user counter key: one spelling per username, so its variants count together.

    Unicode compatibility forms are folded (NFKC: fullwidth ``ｂｏｂ`` is
    ``bob``), then case (``casefold``: ``BOB``, ``bOb``), then surrounding
    whitespace is dropped (``" bob"``, an ideographic space). Django's login
    form applies NFKC itself; logins that call ``authenticate()`` directly
    (APIs, GraphQL mutations) may not.
    """
    if username is None:
        return None
    # NFKC again after casefold: folding can produce a sequence NFKC composes differently.
    value = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", str(username)).casefold()).strip()
    return value or None


def _counter_keys(client_ip: str | None, username: str | None) -> list[tuple[str, str]]:
    pairs = []
    if client_ip:
        pairs.append((RULE_PER_IP, str(client_ip)))
    user_key = normalise_username(username)
    if user_key:
        pairs.append((RULE_PER_USER, user_key))
    return pairs


@functools.lru_cache(maxsize=4096)  # called once per bucket: 22 times per failed login
def _base_key(rule: str, key: str) -> str:
    # Hashed: usernames may hold characters Memcached refuses, and need not sit in the cache in clear.
    digest = hashlib.sha256(f"{rule}\x00{key}".encode()).hexdigest()[:40]
    return f"{_KEY_PREFIX}:{rule}:{digest}"


def _window_seconds() -> int:
    return max(1, int(get_config().alert_thresholds["suspicious_activity_window"]))


def _increment(cache: BaseCache, key: str, timeout: int, *, known: bool = True) -> int:
    """Add one to the bucket ``key``, creating it (with ``timeout``) when it does not exist.

    ``known``: this process already counted in this bucket, so it most likely exists and ``incr``
    goes first; otherwise ``add`` goes first, as a brute force from many addresses mostly meets
    buckets nobody counted in yet: one cache call instead of a failed ``incr`` (with Django's
    Redis cache, two round trips) and then ``add``.
    """
    if not known:
        if cache.add(key, 1, timeout):
            return 1
        return int(cache.incr(key))  # it existed: another process counted first
    try:
        return int(cache.incr(key))
    except ValueError:  # the bucket does not exist yet
        if cache.add(key, 1, timeout):
            return 1
        return int(cache.incr(key))  # another process created it meanwhile


@dataclass
class _BucketMemo:
    """What this process read of one counter for the current bucket (see ``_count``)."""

    bucket: int
    closed_total: int  # the window's closed buckets: nobody increments a past bucket any more
    last_count: int  # the current bucket's count after this process's last increment
    alerted_until: float  # the alert marker is known to exist until then


class FailedLoginCounter:
    """Counts failed logins per client IP and per username, and raises the alerts."""

    def __init__(self) -> None:
        self._fallback = LocMemCache("rail-django-failed-logins", {"OPTIONS": {"MAX_ENTRIES": 10_000}})
        self._down_until = 0.0
        self._incident = False
        self._lock = threading.Lock()
        self._bucket_memos: dict[tuple, _BucketMemo] = {}

    # -- cache access with per-process fallback ------------------------------
    def _with_cache(self, operation: Callable[[BaseCache], T]) -> T:
        alias = get_config().cache_alias
        if time.monotonic() >= self._down_until:
            try:
                result = operation(caches[alias])
            except Exception as exc:
                self._cache_failed(alias, exc)
            else:
                if self._incident:
                    self._incident = False
                    logger.warning("Cache %r is reachable again; failed logins are counted there again.", alias)
                return result
        return operation(self._fallback)

    def _cache_failed(self, alias: str, exc: BaseException) -> None:
        with self._lock:
            self._down_until = time.monotonic() + CACHE_RETRY_SECONDS
            first = not self._incident
            self._incident = True
        if first:
            logger.warning(
                "Cache %r failed (%s: %s); failed logins are counted per process, and the cache is retried "
                "every %ds. Alerts and lockouts no longer see other processes' failures meanwhile.",
                alias, type(exc).__name__, exc, int(CACHE_RETRY_SECONDS),
            )

    def reset(self) -> None:
        """Forget the per-process counts and any cache incident (for tests)."""
        self._fallback.clear()
        self._bucket_memos = {}
        self._down_until = 0.0
        self._incident = False

    # -- counting --------------------------------------------------------------
    def record_failure(self, *, client_ip: str | None, username: str | None, request: Any = None) -> list[SecurityEvent]:
        """Count one failed login; returns the ``security.alert`` events it raised (usually none)."""
        pairs = _counter_keys(client_ip, username)
        if not pairs:
            return []
        thresholds = get_config().alert_thresholds
        window = _window_seconds()
        now = time.time()
        tripped = self._with_cache(lambda cache: self._count(cache, pairs, thresholds, window, now))
        return [event for rule, key, count in tripped if (event := raise_alert(rule, key, count, window, request))]

    def _count(
        self, cache: BaseCache, pairs: list[tuple[str, str]], thresholds: dict[str, int], window: int, now: float
    ) -> list[tuple[str, str, int]]:
        width = window / SUB_BUCKETS
        current = int(now // width)
        bucket_timeout = math.ceil(window + width) + 1
        cache_id = id(cache)
        counts = {}
        for pair in pairs:
            memo = self._bucket_memos.get((cache_id, *pair))
            known = memo is not None and memo.bucket == current
            counts[pair] = _increment(cache, f"{_base_key(*pair)}:{current}", bucket_timeout, known=known)
        memos = self._memos(cache, counts, current, window)
        tripped = []
        for (rule, key), count in counts.items():
            memo = memos[(rule, key)]
            total = count + memo.closed_total
            if total < int(thresholds[rule]) or memo.alerted_until > now:
                continue
            marker = f"{_base_key(rule, key)}:alerted"
            if cache.add(marker, int(now), window):
                memo.alerted_until = now + window
                tripped.append((rule, key, total))
            else:  # raised meanwhile by another process: learn until when
                memo.alerted_until = int(cache.get(marker) or now) + window
        return tripped

    def _memos(self, cache: BaseCache, counts: dict[tuple[str, str], int], current: int, window: int) -> dict:
        """Each pair's memo for bucket ``current``; one ``get_many`` for those it has to read."""
        cache_id = id(cache)
        memos, stale = {}, []
        for pair, count in counts.items():
            memo = self._bucket_memos.get((cache_id, *pair))
            # A count that did not grow since this process last incremented it means the cache
            # lost the bucket (cleared, evicted, restarted): what it remembers is gone too.
            if memo is None or memo.bucket != current or count <= memo.last_count:
                stale.append(pair)
            else:
                memo.last_count = count
                memos[pair] = memo
        if stale:
            wanted = {
                pair: [f"{_base_key(*pair)}:{b}" for b in range(current - SUB_BUCKETS + 1, current)] for pair in stale
            }
            markers = {pair: f"{_base_key(*pair)}:alerted" for pair in stale}
            seen = cache.get_many([k for keys in wanted.values() for k in keys] + list(markers.values()))
            if len(self._bucket_memos) > MAX_BUCKET_MEMOS:
                self._bucket_memos = {k: m for k, m in self._bucket_memos.items() if m.bucket == current}
                if len(self._bucket_memos) > MAX_BUCKET_MEMOS:
                    self._bucket_memos = {}
            for pair in stale:
                alerted_at = seen.get(markers[pair])
                memo = _BucketMemo(
                    bucket=current,
                    closed_total=sum(int(seen.get(k) or 0) for k in wanted[pair]),
                    last_count=counts[pair],
                    alerted_until=(int(alerted_at) + window) if alerted_at is not None else 0.0,
                )
                self._bucket_memos[(cache_id, *pair)] = memo
                memos[pair] = memo
        return memos


def raise_alert(rule: str, key: str, count: int, window: int, request: Any = None) -> SecurityEvent | None:
    """Emit the ``security.alert`` event and send the ``security_alert`` signal; never raises."""
    event = None
    try:
        if get_config().enabled:
            subject = "client IP" if rule == RULE_PER_IP else "username"
            event = security.build(
                EventType.SECURITY_ALERT,
                request=request,
                outcome=Outcome.FAILURE,
                severity=Severity.CRITICAL,
                action=f"{count} failed logins for one {subject} within {window}s",
                resource_type="client_ip" if rule == RULE_PER_IP else "username",
            )
            # Set after redaction: "key" is one of the masked key words, but this key is the
            # counter's subject (an IP or a username), which the event exists to name.
            # A username key is stored as AUDIT_ATTEMPTED_USERNAME says (it may be a password typed in the wrong field).
            from rail_django.capture.auth import stored_username

            shown = key if rule == RULE_PER_IP else stored_username(key)
            event.context = {"rule": rule, "key": current_redactor().scrub_text(shown), "count": count, "window": window}
            dispatcher.deliver(event)
    except Exception:
        logger.exception("Could not record the %s alert", rule)
    for receiver, result in security_alert.send_robust(
        sender=FailedLoginCounter, event=event, rule=rule, key=key, count=count, window=window
    ):
        if isinstance(result, Exception):
            logger.error("security_alert receiver %r failed: %r", receiver, result)
    return event


counter = FailedLoginCounter()


def record_failed_login(*, client_ip: str | None, username: str | None, request: Any = None) -> list[SecurityEvent]:
    """Count a failed login against its IP and username; never raises into the login."""
    try:
        return counter.record_failure(client_ip=client_ip, username=username, request=request)
    except Exception:
        logger.exception("Could not count a failed login")
        return []


def mark_refused(lockout: Lockout) -> None:
    """Tell the ``user_login_failed`` receiver that this failure was a lockout (set by the backend)."""
    _refused.set(lockout)


def pop_refused() -> Lockout | None:
    """The lockout behind the login failure being recorded, if any; clears it."""
    lockout = _refused.get()
    if lockout is not None:
        _refused.set(None)
    return lockout
