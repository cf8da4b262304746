"""``audit_management partitions``: status, premake, drop, convert, revert (``AUDIT_PARTITIONING``).

The DDL is in :mod:`rail_django.partitioning`; here are the parts that touch
the rest of the package: a dropped partition is first archived as JSON lines
through the export writer, its last sealed row becomes the integrity chain's
anchor (so ``verify`` still passes), and each drop is recorded as one
``system.config.change`` event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.core.management.base import CommandError
from django.db import OperationalError

from rail_django import partitioning as parts
from rail_django.conf import get_config
from rail_django.integrity.chain import record_anchor
from rail_django.operations.common import invoked_by, now, stored_events
from rail_django.operations.export import DEFAULT_CHUNK_SIZE, Writer, export_fields, open_output, row_chunks
from rail_django.security import EventType, Severity, security


@dataclass(frozen=True)
class Dropped:
    name: str
    lower: datetime | None
    upper: datetime
    #: Rows written to the archive (None: no archive asked for).
    archived: int | None
    archive: str | None
    #: Seconds of the DETACH transaction (archive, anchor, DETACH): the only part that locks the audit table.
    detach_seconds: float = 0.0
    #: Seconds of the DROP (the files deleted), with no lock on the audit table.
    drop_seconds: float = 0.0


def _alias() -> str:
    return get_config().database_alias


def audit_table() -> str:
    return stored_events().model._meta.db_table


def configured() -> parts.Settings | None:
    """``AUDIT_PARTITIONING`` as :class:`rail_django.partitioning.Settings`, or None when off."""
    return parts.settings_from(get_config().partitioning)


def settings_or_error() -> parts.Settings:
    settings = configured()
    if settings is None:
        raise CommandError("AUDIT_PARTITIONING is not set (see docs/scaling.md#partitions)")
    return settings


def status() -> list[parts.Partition]:
    """The partitions (range, estimated rows from ``pg_class.reltuples``, size) — oldest first, default last."""
    alias = _alias()
    if not parts.is_partitioned(alias, audit_table()):
        raise CommandError(f"{audit_table()} is not partitioned (run 'audit_management partitions convert')")
    return parts.partitions(alias, audit_table())


def default_rows() -> int:
    return parts.default_partition_rows(_alias(), audit_table())


def _lock_error(exc: OperationalError) -> CommandError:
    return CommandError(
        f"the audit table stayed locked past {parts.LOCK_TIMEOUT_MS} ms (a long query or export holds it); "
        f"nothing was changed, run the command again ({str(exc).splitlines()[0]})"
    )


def premake(until: datetime | None = None) -> list[str]:
    try:
        created, _ = parts.premake(_alias(), audit_table(), settings_or_error(), until=until)
    except parts.PartitioningError as exc:
        raise CommandError(str(exc)) from exc
    except OperationalError as exc:
        raise _lock_error(exc) from exc
    return created


def convert(log: Callable[[str], None] | None = None) -> str:
    try:
        return parts.convert(_alias(), audit_table(), settings_or_error(), log=log)
    except parts.PartitioningError as exc:
        raise CommandError(str(exc)) from exc
    except OperationalError as exc:
        raise _lock_error(exc) from exc


def revert(log: Callable[[str], None] | None = None) -> int:
    try:
        return parts.revert(_alias(), audit_table(), log=log)
    except parts.PartitioningError as exc:
        raise CommandError(str(exc)) from exc


def drop_older_than(
    days: int,
    archive: str | None = None,
    log: Callable[[str], None] | None = None,
    *,
    record: bool = True,
    cutoff: datetime | None = None,
) -> list[Dropped]:
    """Drop every partition whose rows are all older than ``days`` days.

    Per partition, in one transaction that stops writes to that partition only
    (SHARE lock): archive its rows as JSON lines to ``archive/<partition>.jsonl``
    (mode 0600, replaced atomically), move the integrity anchor to its last
    sealed row, DETACH it; then DROP it in a transaction of its own, so the
    audit table is not locked while the files are deleted. (A process killed
    between the two leaves the detached table behind, outside the audit
    table: drop it by hand.)
    """
    alias = _alias()
    if not parts.is_partitioned(alias, audit_table()):
        raise CommandError(f"{audit_table()} is not partitioned (run 'audit_management partitions convert')")
    cutoff = cutoff or now() - timedelta(days=days)
    table = audit_table()
    folder = Path(archive) if archive else None
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise CommandError(f"cannot create --archive {archive!r}: {exc.strerror or exc}") from None
    dropped = []
    for partition in parts.expired(alias, table, cutoff):
        rows = stored_events().filter(timestamp__lt=partition.upper)
        if partition.lower is not None:
            rows = rows.filter(timestamp__gte=partition.lower)
        started = time.perf_counter()
        try:
            with parts.locked(alias, table, partition.name) as cursor:
                count = path = None
                if folder is not None:
                    path = str(folder / f"{partition.name}.jsonl")
                    count = _archive(rows, path)
                record_anchor(rows, alias=alias)  # with AUDIT_INTEGRITY_KEY: the rest of the chain still verifies
                parts.detach(cursor, table, partition.name)
        except OperationalError as exc:
            raise _lock_error(exc) from exc
        detached = time.perf_counter()
        parts.drop_detached(alias, partition.name)
        assert partition.upper is not None
        dropped.append(Dropped(partition.name, partition.lower, partition.upper, count, path,
                               detached - started, time.perf_counter() - detached))
        if log:
            log(f"Dropped partition {partition.name}" + (f" ({count} rows archived to {path})" if path else ""))
    if record and dropped:
        security.emit(
            EventType.SYSTEM_CONFIG_CHANGE,
            severity=Severity.WARNING,
            action=f"Audit retention dropped {len(dropped)} partitions older than {days} days",
            resource_type="audit_event",
            context={
                "operation": "audit_partition_drop",
                "partitions": [d.name for d in dropped],
                "days": days,
                "cutoff": cutoff.isoformat(),
                "archived": [d.archive for d in dropped if d.archive],
                "invoked_by": invoked_by(),
            },
        )
    return dropped


def _archive(rows: object, path: str) -> int:
    fields = export_fields(rows.model)  # type: ignore[attr-defined]
    with open_output(path, None) as out:  # type: ignore[arg-type]
        writer = Writer("jsonl", rows.model, fields, out)  # type: ignore[attr-defined]
        writer.begin()
        chunks = row_chunks(rows, fields, DEFAULT_CHUNK_SIZE, stored_json=writer.copies_stored_json)  # type: ignore[arg-type]
        for chunk in chunks:
            writer.write(chunk)
        writer.end()
    return writer.count
