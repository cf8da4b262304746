"""``audit_management cleanup``: retention, the one way rows leave the append-only table.

Deletes events older than ``--days`` (default ``AUDIT_RETENTION_DAYS``) in
batches of ``--batch-size`` primary keys, each batch its own short statement
and transaction, so a large table is never locked for the whole run. With
``AUDIT_INTEGRITY_KEY`` set, each batch's last sealed row becomes the hash
chain's anchor before the batch goes, so the remaining rows still verify.
The run is recorded as one ``system.config.change`` event.

On a partitioned table (``AUDIT_PARTITIONING``, PostgreSQL) whole partitions
older than the cut are dropped first (DETACH + DROP, the anchor moved with
them, no archive: use ``partitions drop --archive`` for that); the batched
delete then only touches the partition that straddles the cut.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from rail_django import partitioning
from rail_django.conf import get_config
from rail_django.integrity.chain import record_anchor
from rail_django.models import allow_retention_delete
from rail_django.operations.common import invoked_by, now, stored_events
from rail_django.security import EventType, Severity, security

DEFAULT_BATCH_SIZE = 1000


@dataclass(frozen=True)
class CleanupResult:
    days: int
    cutoff: datetime
    matched: int
    deleted: int
    batches: int
    dry_run: bool
    #: Partitions dropped whole (partitioned table only).
    partitions: tuple[str, ...] = ()


def run_cleanup(
    *,
    days: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> CleanupResult:
    """Delete (or, with ``dry_run``, count) the events older than ``days`` days."""
    days = days if days is not None else get_config().retention_days
    cutoff = now() - timedelta(days=days)
    expired = stored_events().filter(timestamp__lt=cutoff)
    if dry_run:
        return CleanupResult(days, cutoff, expired.count(), 0, 0, True)
    dropped: tuple[str, ...] = ()
    alias = expired.db
    if partitioning.is_partitioned(alias, expired.model._meta.db_table):
        from rail_django.operations.partitions import drop_older_than

        dropped = tuple(d.name for d in drop_older_than(days, record=False, cutoff=cutoff))
        expired = stored_events().filter(timestamp__lt=cutoff)
    deleted = batches = 0
    pk_name = expired.model._meta.pk.attname
    while True:
        ids = list(expired.order_by("timestamp", "pk").values_list(pk_name, flat=True)[:batch_size])
        if not ids:
            break
        batch = stored_events().filter(pk__in=ids)
        record_anchor(batch, alias=batch.db)  # with AUDIT_INTEGRITY_KEY: the rest of the chain still verifies
        with allow_retention_delete():
            count, _ = batch.delete()
        deleted += count
        batches += 1
        if on_batch:
            on_batch(deleted)
    security.emit(
        EventType.SYSTEM_CONFIG_CHANGE,
        severity=Severity.WARNING,
        action=f"Audit retention cleanup deleted {deleted} events older than {days} days",
        resource_type="audit_event",
        context={
            "operation": "audit_retention_cleanup",
            "deleted": deleted,
            "days": days,
            "cutoff": cutoff.isoformat(),
            "batches": batches,
            "batch_size": batch_size,
            "partitions_dropped": list(dropped),
            "invoked_by": invoked_by(),
        },
    )
    return CleanupResult(days, cutoff, deleted, deleted, batches, False, dropped)
