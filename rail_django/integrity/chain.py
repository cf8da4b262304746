"""Tamper evidence: a keyed hash chain over stored audit rows.

With ``AUDIT_INTEGRITY_KEY`` set, the background writer *seals* rows after
they are inserted, in ``id`` order: each row gets the next ``chain_sequence``
and ``chain_hash = HMAC-SHA256(key, previous_hash + canonical(row))``. The
hash is computed over the row **as read back from the database** (so
PostgreSQL's ``jsonb`` key order or a backend's number formatting cannot
break it), and sealing runs off the request path, serialised by a lock on
the chain head row (one chain head would otherwise make every insert wait).

:func:`verify_chain` walks the chain and reports the first row that was
changed (hash mismatch), removed (sequence gap, or a head that is ahead of
the last row) or inserted out of order (a row whose timestamp is far older
than the rows sealed before it). Retention cleanup records the last removed
row as the chain's *anchor*, so the remaining rows still verify.

What it protects against: edits, deletions and back-dated inserts made with
SQL by someone who has database access but not the key. What it does not:
someone holding the key (Django's settings) can re-seal a forged history;
rows inserted and sealed before anyone notices are indistinguishable from
real ones; and unsealed rows (the last second or so) are not yet covered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from django.db import DatabaseError, IntegrityError, connections, transaction

from rail_django.conf import read_setting

logger = logging.getLogger("rail_django.audit")

GENESIS = "0" * 64
#: How much older than its predecessor a row's timestamp may be before it
#: counts as inserted out of order (queues and clocks of several workers).
OUT_OF_ORDER_TOLERANCE = timedelta(minutes=5)

_CANONICAL_FIELDS = (
    "event_id", "event_type", "severity", "user_id", "username", "client_ip", "user_agent", "timestamp",
    "request_path", "request_method", "additional_data", "success", "error_message", "correlation_id",
    "session_id",
)


def integrity_key() -> bytes | None:
    """The HMAC key from ``AUDIT_INTEGRITY_KEY``, or None when tamper evidence is off."""
    key = read_setting("AUDIT_INTEGRITY_KEY")
    if not key:
        return None
    return key if isinstance(key, bytes) else str(key).encode("utf-8")


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds")
    if value is None or isinstance(value, (bool, int, float, str, dict, list)):
        return value
    return str(value)


def canonical(row: Any, sequence: int) -> bytes:
    """The bytes a row's hash covers: its stored fields and its place in the chain."""
    data = {name: _canonical_value(getattr(row, name)) for name in _CANONICAL_FIELDS}
    data["chain_sequence"] = sequence
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def chain_hash(key: bytes, previous: str, row: Any, sequence: int) -> str:
    return hmac.new(key, previous.encode("ascii") + b"\n" + canonical(row, sequence), hashlib.sha256).hexdigest()


def _sign_state(key: bytes, name: str, sequence: int, digest: str) -> str:
    return hmac.new(key, f"{name}:{sequence}:{digest}".encode(), hashlib.sha256).hexdigest()


def _models():
    from rail_django.models import AuditChainState, get_audit_event_model

    return get_audit_event_model(), AuditChainState


def _state(name: str, key: bytes, *, for_update: bool = False, nowait: bool = False):
    _, chain_state = _models()
    queryset = chain_state.objects.select_for_update(nowait=nowait) if for_update else chain_state.objects
    state = queryset.filter(name=name).first()
    if state is None:
        state = chain_state(name=name, sequence=0, hash=GENESIS, signature=_sign_state(key, name, 0, GENESIS))
    return state


def seal_pending(alias: str = "default", batch_size: int = 1000, max_batches: int = 100) -> int:
    """Seal unsealed rows in ``id`` order; returns how many. Safe to call from several processes."""
    key = integrity_key()
    if key is None:
        return 0
    model, _ = _models()
    total = 0
    nowait = connections[alias].features.has_select_for_update_nowait
    for _ in range(max_batches):
        try:
            with transaction.atomic(using=alias):
                head = _state("head", key, for_update=True, nowait=nowait)
                rows = list(model.objects.using(alias).filter(chain_sequence__isnull=True).order_by("id")[:batch_size])
                if not rows:
                    return total
                sequence, previous = head.sequence, head.hash
                for row in rows:
                    sequence += 1
                    row.chain_sequence = sequence
                    row.chain_hash = previous = chain_hash(key, previous, row, sequence)
                from rail_django.models import allow_sealing

                with allow_sealing():
                    model.objects.using(alias).bulk_update(rows, ["chain_sequence", "chain_hash"])
                head.sequence, head.hash = sequence, previous
                head.signature = _sign_state(key, "head", sequence, previous)
                head.save(using=alias)
                total += len(rows)
        except (IntegrityError, DatabaseError) as exc:
            # Another process holds the head or sealed these rows first: it will finish the job.
            logger.debug("Sealing deferred: %s", exc)
            return total
    return total


def record_anchor(rows_to_delete: Any, alias: str = "default") -> None:
    """Before retention deletes ``rows_to_delete``, remember the last sealed one as the anchor."""
    key = integrity_key()
    if key is None:
        return
    last = rows_to_delete.exclude(chain_sequence__isnull=True).order_by("-chain_sequence").values_list(
        "chain_sequence", "chain_hash"
    ).first()
    if last is None:
        return
    with transaction.atomic(using=alias):
        anchor = _state("anchor", key, for_update=True)
        if last[0] > anchor.sequence:
            anchor.sequence, anchor.hash = last
            anchor.signature = _sign_state(key, "anchor", last[0], last[1])
            anchor.save(using=alias)


@dataclass
class Problem:
    kind: str  # changed | removed | out_of_order | head_mismatch | state_forged
    sequence: int | None
    event_id: str | None
    detail: str


@dataclass
class VerifyReport:
    checked: int = 0
    unsealed: int = 0
    anchor: int = 0
    head: int = 0
    problem: Problem | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_chain(since: datetime | None = None, alias: str = "default") -> VerifyReport:
    """Walk the chain from the anchor (or from ``since``) and report the first problem."""
    key = integrity_key()
    if key is None:
        raise ValueError("AUDIT_INTEGRITY_KEY is not set: there is no chain to verify")
    model, _ = _models()
    report = VerifyReport()
    anchor, head = _state("anchor", key), _state("head", key)
    for state in (anchor, head):
        if not hmac.compare_digest(state.signature, _sign_state(key, state.name, state.sequence, state.hash)):
            report.problem = Problem("state_forged", state.sequence, None, f"the chain {state.name} was altered")
            return report
    report.anchor, report.head = anchor.sequence, head.sequence
    rows = model.objects.using(alias).filter(chain_sequence__gt=anchor.sequence).order_by("chain_sequence")
    expected, previous = anchor.sequence + 1, anchor.hash
    if since is not None:
        first = rows.filter(timestamp__gte=since).values_list("chain_sequence", flat=True).first()
        if first is not None and first > expected:
            before = model.objects.using(alias).filter(chain_sequence=first - 1).values_list("chain_hash", flat=True).first()
            if before is None:
                report.problem = Problem("removed", first - 1, None, f"row {first - 1}, before --since, is missing")
                return report
            expected, previous = first, before
            rows = rows.filter(chain_sequence__gte=first)
    latest: datetime | None = None
    for row in rows.iterator(chunk_size=2000):
        if row.chain_sequence != expected:
            report.problem = Problem(
                "removed", expected, None,
                f"rows {expected}..{row.chain_sequence - 1} are missing (next present: {row.event_id})",
            )
            return report
        if not hmac.compare_digest(row.chain_hash or "", chain_hash(key, previous, row, row.chain_sequence)):
            report.problem = Problem("changed", row.chain_sequence, str(row.event_id), "its content does not match its hash")
            return report
        if latest is not None and row.timestamp < latest - OUT_OF_ORDER_TOLERANCE:
            report.problem = Problem(
                "out_of_order", row.chain_sequence, str(row.event_id),
                f"timestamp {row.timestamp.isoformat()} is older than rows sealed before it ({latest.isoformat()})",
            )
            return report
        latest = row.timestamp if latest is None else max(latest, row.timestamp)
        previous, expected = row.chain_hash, expected + 1
        report.checked += 1
    if expected - 1 != head.sequence:
        report.problem = Problem(
            "removed", expected, None,
            f"the chain head is at {head.sequence} but the last row present is {expected - 1}",
        )
        return report
    report.unsealed = model.objects.using(alias).filter(chain_sequence__isnull=True).count()
    return report
