"""Sealing: stored rows join the chain, in time order, off the request path.

The background writer calls :func:`seal_pending` about once a second. Each
unsealed row (oldest ``timestamp`` first, then ``id``) gets the next ``chain_sequence`` and ``chain_hash`` (see
:mod:`rail_django.integrity.canonical`); the head moves and is re-signed in the
same transaction, under a lock on the head row (one chain has one head, so
several processes take turns; a unique ``chain_sequence`` makes a lost race
harmless). Then the checkpoint publisher hears about the new head.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError, IntegrityError, connections, transaction

from rail_django.events.types import EventType
from rail_django.integrity.canonical import chain_hash
from rail_django.integrity.signing import Signer, chain_signer
from rail_django.integrity.state import ANCHOR, HEAD, load_state, sign_state, state_fault

logger = logging.getLogger("rail_django.audit")

_CHECKPOINT = EventType.SYSTEM_INTEGRITY_CHECKPOINT.value
_refusals: set[str] = set()


class HeadRefused(Exception):
    """The stored head's signature fails: the sealer will not extend it."""


def integrity_key() -> bytes | None:
    """The key row hashes are computed with, or None when tamper evidence is off.

    The ``AUDIT_INTEGRITY_KEY`` secret, or with ``AUDIT_INTEGRITY_SIGNING_KEY``
    a key derived from the Ed25519 public key. The delivery layer asks this
    to know whether to seal.
    """
    signer = chain_signer()
    return signer.row_key if signer is not None and signer.can_sign else None


def _seal_batch(model: Any, signer: Signer, alias: str, batch_size: int, nowait: bool) -> tuple[int, Any, bool]:
    """Seal up to ``batch_size`` rows in one transaction: (count, head, whether any is not a checkpoint)."""
    from rail_django.models import allow_sealing

    with transaction.atomic(using=alias):
        head = load_state(HEAD, signer, alias, for_update=True, nowait=nowait)
        fault = state_fault(head, signer)
        if fault is not None:
            # Extending (and re-signing) a head we did not sign would vouch for someone else's chain.
            raise HeadRefused(fault)
        # Time order, then insertion order: rows that arrive late but together (a replayed journal, a
        # table older than the key) join the chain in the order they happened.
        pending = model.objects.using(alias).filter(chain_sequence__isnull=True)
        rows = list(pending.order_by("timestamp", "id")[:batch_size])
        if not rows:
            return 0, head, False
        sequence, previous = head.sequence, head.hash
        for row in rows:
            sequence += 1
            row.chain_sequence = sequence
            row.chain_hash = previous = chain_hash(signer.row_key, previous, row, sequence)
        with allow_sealing():
            model.objects.using(alias).bulk_update(rows, ["chain_sequence", "chain_hash"])
        head.sequence, head.hash = sequence, previous
        sign_state(head, signer)
        head.save(using=alias)
    return len(rows), head, any(row.event_type != _CHECKPOINT for row in rows)


def seal_pending(alias: str = "default", batch_size: int = 1000, max_batches: int = 100, *, publish: bool = True) -> int:
    """Seal unsealed rows in time order; returns how many. Safe to call from several processes.

    With ``publish`` (the sealer's default), the checkpoint publisher is told
    the new head when rows other than checkpoints were sealed.
    """
    signer = chain_signer()
    if signer is None or not signer.can_sign:
        return 0
    from rail_django.models import get_audit_event_model

    model = get_audit_event_model()
    nowait = connections[alias].features.has_select_for_update_nowait
    total, head, witness = 0, None, False
    try:
        for _ in range(max_batches):
            count, batch_head, news = _seal_batch(model, signer, alias, batch_size, nowait)
            if not count:
                break
            total, head, witness = total + count, batch_head, witness or news
    except (IntegrityError, DatabaseError) as exc:
        # Another process holds the head or sealed these rows first: it will finish the job.
        logger.debug("Sealing deferred: %s", exc)
    except HeadRefused as exc:
        if str(exc) not in _refusals:  # once per fault, not once a second
            _refusals.add(str(exc))
            logger.error("Audit rows are not sealed: %s (run `audit_management verify`).", exc)
    if publish and witness and head is not None:
        from rail_django.integrity.checkpoints import publisher

        publisher.sealed(head.sequence, head.hash, alias)
    return total


def record_anchor(rows_to_delete: Any, alias: str = "default") -> None:
    """Before retention deletes ``rows_to_delete``, remember the last sealed one as the anchor."""
    signer = chain_signer()
    if signer is None or not signer.can_sign:
        return
    last = rows_to_delete.exclude(chain_sequence__isnull=True).order_by("-chain_sequence").values_list(
        "chain_sequence", "chain_hash"
    ).first()
    if last is None:
        return
    with transaction.atomic(using=alias):
        anchor = load_state(ANCHOR, signer, alias, for_update=True)
        if last[0] > anchor.sequence:
            anchor.sequence, anchor.hash = last
            sign_state(anchor, signer)
            anchor.save(using=alias)
