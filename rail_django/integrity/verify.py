"""Verification: walk the chain, check its signed positions, compare with checkpoints kept elsewhere.

:func:`verify_chain` reports the first problem it finds:

================== ==============================================================
``state_forged``   the head or anchor's signature fails, or the head is missing
                   while sealed rows exist
``removed``        a gap in the sequence, or a head ahead of the last row
``changed``        a row's content no longer matches its hash
``re_encoded``     a row is stored in another form than its writer's (a
                   timestamp offset, a duplicate JSON key): same hash, other SQL
``out_of_order``   a row much older than the rows sealed before it (back-dated)
``head_mismatch``  the signed head does not match the rows (a rewritten and
                   re-hashed history), or rows are sealed beyond the head
``checkpoint_*``   see :func:`check_checkpoints`
================== ==============================================================

Without checkpoints, nothing in the database can show that rows were deleted
at the end together with the head wound back to a saved copy, or that the
tables were emptied: that needs :func:`check_checkpoints`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import Count, Max

from rail_django.integrity.canonical import chain_hash
from rail_django.integrity.checkpoints import CheckpointScan, FoundCheckpoint
from rail_django.integrity.signing import Signer, configured_signer
from rail_django.integrity.state import ANCHOR, HEAD, load_state, state_fault
from rail_django.integrity.stored_form import StoredFormCheck

#: How much older than its predecessor a row's timestamp may be before it
#: counts as inserted out of order (queues and clocks of several workers).
OUT_OF_ORDER_TOLERANCE = timedelta(minutes=5)
#: Rows read per query while walking the chain.
CHUNK = 2000


@dataclass
class Problem:
    kind: str
    sequence: int | None
    event_id: str | None
    detail: str


@dataclass
class CheckpointSummary:
    """What the comparison with checkpoints used."""

    files: list[str]
    checked: int = 0
    other_keys: int = 0
    before_anchor: int = 0
    malformed: list[str] = field(default_factory=list)
    newest: FoundCheckpoint | None = None


@dataclass
class VerifyReport:
    checked: int = 0
    unsealed: int = 0
    anchor: int = 0
    head: int = 0
    problem: Problem | None = None
    notes: list[str] = field(default_factory=list)
    signer: str = ""
    sealed_meanwhile: int = 0
    #: None when no checkpoints were given.
    checkpoints: CheckpointSummary | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _model() -> Any:
    from rail_django.models import get_audit_event_model

    return get_audit_event_model()


def verify_chain(
    since: datetime | None = None,
    alias: str = "default",
    *,
    signer: Signer | None = None,
    checkpoints: CheckpointScan | None = None,
) -> VerifyReport:
    """Walk the chain from the anchor (or from ``since``) and report the first problem.

    ``signer`` defaults to the configured key; an Ed25519 public key
    (:func:`rail_django.integrity.signing.load_public_key`) verifies without any
    secret. ``checkpoints`` adds the comparison with checkpoints kept elsewhere.
    """
    signer = signer or configured_signer()
    if signer is None:
        raise ValueError("AUDIT_INTEGRITY_KEY is not set: there is no chain to verify")
    report = VerifyReport(signer=signer.describe())
    anchor, head = load_state(ANCHOR, signer, alias), load_state(HEAD, signer, alias)
    for state in (anchor, head):
        fault = state_fault(state, signer)
        if fault is not None:
            report.problem = Problem("state_forged", state.sequence, None, fault)
            return report
    report.anchor, report.head = anchor.sequence, head.sequence
    model = _model()
    report.problem = (
        _walk(report, model, signer, alias, anchor, head, since)
        or _beyond_head(report, model, signer, alias, head)
    )
    if report.problem is None:
        report.unsealed = model.objects.using(alias).filter(chain_sequence__isnull=True).count()
        if checkpoints is not None:
            report.problem = check_checkpoints(report, signer, checkpoints, anchor, head, alias)
    return report


def _start(model: Any, alias: str, anchor: Any, since: datetime | None) -> tuple[int, str] | Problem:
    """The first sequence to walk and the hash before it."""
    expected, previous = anchor.sequence + 1, anchor.hash
    if since is None:
        return expected, previous
    rows = model.objects.using(alias).filter(chain_sequence__gt=anchor.sequence)
    first = rows.filter(timestamp__gte=since).order_by("chain_sequence").values_list("chain_sequence", flat=True).first()
    if first is None or first <= expected:
        return expected, previous
    before = rows.filter(chain_sequence=first - 1).values_list("chain_hash", flat=True).first()
    if before is None:
        return Problem("removed", first - 1, None, f"row {first - 1}, before --since, is missing")
    return first, before


def _walk(report: VerifyReport, model: Any, signer: Signer, alias: str, anchor: Any, head: Any,
          since: datetime | None) -> Problem | None:
    start = _start(model, alias, anchor, since)
    if isinstance(start, Problem):
        return start
    expected, previous = start
    stored_form = StoredFormCheck(model, connections[alias])
    latest: datetime | None = None
    rows = model.objects.using(alias).filter(chain_sequence__lte=head.sequence).order_by("chain_sequence")
    after = expected - 1
    while chunk := list(rows.filter(chain_sequence__gt=after)[:CHUNK]):
        stored = stored_form.fetch(after, chunk[-1].chain_sequence)
        for row in chunk:
            problem = _row_problem(row, expected, previous, signer, latest)
            if problem is None and (fault := stored_form.fault(row, stored.get(row.chain_sequence))):
                problem = Problem("re_encoded", row.chain_sequence, str(row.event_id), fault)
            if problem is not None:
                return problem
            latest = row.timestamp if latest is None else max(latest, row.timestamp)
            previous, expected = row.chain_hash, expected + 1
            report.checked += 1
        after = chunk[-1].chain_sequence
    if expected - 1 != head.sequence:
        return Problem(
            "removed", expected, None, f"the chain head is at {head.sequence} but the last row present is {expected - 1}"
        )
    if previous != head.hash:
        return Problem(
            "head_mismatch", head.sequence, None,
            f"the signed head's hash differs from row {head.sequence}'s: rows up to it were rewritten and re-hashed",
        )
    return None


def _row_problem(row: Any, expected: int, previous: str, signer: Signer, latest: datetime | None) -> Problem | None:
    if row.chain_sequence != expected:
        return Problem(
            "removed", expected, None, f"rows {expected}..{row.chain_sequence - 1} are missing (next present: {row.event_id})"
        )
    if (row.chain_hash or "") != chain_hash(signer.row_key, previous, row, row.chain_sequence):
        return Problem("changed", row.chain_sequence, str(row.event_id), "its content does not match its hash")
    if latest is not None and row.timestamp < latest - OUT_OF_ORDER_TOLERANCE:
        return Problem(
            "out_of_order", row.chain_sequence, str(row.event_id),
            f"timestamp {row.timestamp.isoformat()} is older than rows sealed before it ({latest.isoformat()})",
        )
    return None


def _beyond_head(report: VerifyReport, model: Any, signer: Signer, alias: str, head: Any) -> Problem | None:
    """Rows sealed past the head: a seal that ran while verifying, or rows sealed without the key."""
    beyond = model.objects.using(alias).filter(chain_sequence__gt=head.sequence).aggregate(
        count=Count("pk"), last=Max("chain_sequence")
    )
    if not beyond["count"]:
        return None
    current = load_state(HEAD, signer, alias)
    if not current.missing and current.sequence >= beyond["last"] and state_fault(current, signer) is None:
        report.sealed_meanwhile = beyond["count"]
        return None
    if head.missing:
        return Problem(
            "state_forged", None, None,
            f"the chain head is missing, yet {beyond['count']} sealed rows exist (up to sequence {beyond['last']})",
        )
    return Problem(
        "head_mismatch", head.sequence + 1, None,
        f"{beyond['count']} rows are sealed beyond the signed head (sequence {head.sequence}), up to "
        f"{beyond['last']}: sealed without the key, or the head was wound back",
    )


def check_checkpoints(report: VerifyReport, signer: Signer, scan: CheckpointScan, anchor: Any, head: Any,
                      alias: str) -> Problem | None:
    """Compare the table with checkpoints kept elsewhere.

    ``checkpoint_forged``: a checkpoint by this key whose signature fails;
    ``no_checkpoint``: none by this key; ``emptied`` / ``head_wound_back``: the
    table ends before the newest checkpoint; ``checkpoint_mismatch``: a row's
    hash differs from a checkpoint's (history rewritten or re-sealed).
    """
    summary = report.checkpoints = CheckpointSummary(files=list(scan.files), malformed=list(scan.malformed))
    mine: list[FoundCheckpoint] = []
    for found in scan.found:
        checkpoint = found.checkpoint
        if checkpoint.alg != signer.algorithm or checkpoint.signer != signer.signer_id:
            summary.other_keys += 1
        elif not signer.verify(checkpoint.message(), checkpoint.signature):
            return Problem(
                "checkpoint_forged", checkpoint.sequence, None,
                f"the checkpoint at {found.where} does not carry a valid signature by {signer.describe()}",
            )
        else:
            mine.append(found)
    summary.checked = len(mine)
    if not mine:
        others = f" ({summary.other_keys} by other keys)" if summary.other_keys else ""
        return Problem(
            "no_checkpoint", None, None,
            f"no checkpoint signed by {signer.describe()} in {', '.join(scan.files)}{others}: "
            "nothing outside the database to compare the table with",
        )
    newest = summary.newest = max(mine, key=lambda f: (f.checkpoint.sequence, f.checkpoint.at))
    return _unreached(newest, head) or _disagreement(summary, mine, anchor, alias)


def _unreached(newest: FoundCheckpoint, head: Any) -> Problem | None:
    checkpoint = newest.checkpoint
    if checkpoint.sequence <= head.sequence:
        return None
    vouched = f"{newest.where} (signed {checkpoint.at}) vouches for sequence {checkpoint.sequence}"
    if head.sequence == 0:
        return Problem(
            "emptied", checkpoint.sequence, None,
            f"the table holds no sealed row and the chain head is gone, but {vouched}: the tables were emptied",
        )
    return Problem(
        "head_wound_back", checkpoint.sequence, None,
        f"the table ends at sequence {head.sequence} but {vouched}: rows {head.sequence + 1}..{checkpoint.sequence} "
        "were deleted and the chain head wound back",
    )


def _disagreement(summary: CheckpointSummary, mine: list[FoundCheckpoint], anchor: Any, alias: str) -> Problem | None:
    """The first checkpoint that disagrees with the row (or the anchor) at its sequence."""
    wanted: dict[int, list[FoundCheckpoint]] = {}
    for found in mine:
        sequence = found.checkpoint.sequence
        if sequence < anchor.sequence:
            summary.before_anchor += 1  # removed by retention: nothing left to compare
        else:
            wanted.setdefault(sequence, []).append(found)
    stored = {anchor.sequence: anchor.hash}
    sequences = sorted(s for s in wanted if s > anchor.sequence)
    rows = _model().objects.using(alias)
    for start in range(0, len(sequences), 500):
        stored.update(rows.filter(chain_sequence__in=sequences[start:start + 500]).values_list("chain_sequence", "chain_hash"))
    for sequence in sorted(wanted):
        actual = stored.get(sequence)
        for found in wanted[sequence]:
            if actual == found.checkpoint.head:
                continue
            if actual is None:
                detail = f"row {sequence}, vouched for by the checkpoint at {found.where}, is missing"
            else:
                detail = (
                    f"row {sequence}'s hash {actual[:12]}… differs from {found.checkpoint.head[:12]}… in the checkpoint "
                    f"at {found.where} (signed {found.checkpoint.at}): the chain was rewritten or re-sealed from an "
                    "earlier point"
                )
            return Problem("checkpoint_mismatch", sequence, None, detail)
    return None
