"""Bulk writes of tracked models, seen as SQL: ``QuerySet.update()``, ``bulk_update()``, ``bulk_create()``.

Django sends no signal for these, so a database execute wrapper (Django's
"database instrumentation" hook) looks at every statement of every
connection. Statements that are not an ``UPDATE`` or ``INSERT`` of a tracked
table pass straight through (a prefix test). For one that is:

* ``UPDATE``: before it runs, the ids of the rows its ``WHERE`` clause
  matches are read (at most 1,000, in the same transaction); after it, the
  count is the database's row count; ``field = value`` assignments are read
  from the statement (one row is read back when the parameter is the
  database's encoding: dates and UUIDs on SQLite/MySQL, JSON), and the
  values of expressions and of ``bulk_update``'s ``CASE`` are read back for
  the first 100 listed rows.
* ``INSERT``: ids come from ``RETURNING`` (PostgreSQL, MariaDB: the rows are
  read, then the cursor is scrolled back for Django), from the statement's
  own primary-key values, or, on SQLite, from the newest ids of the table
  (the transaction holds SQLite's write lock).

The single-row statements of a tracked ``save()`` are recognised (the save's
``pre_save``/``post_save`` signals bracket them) and left to the signal
receivers. Consecutive statements of one ``bulk_update``/``bulk_create``
(batches) become one event.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from rail_django.capture.model_changes import record, statements
from rail_django.capture.model_changes.sql import parse_insert, parse_update, statement_table
from rail_django.events.types import EventType
from rail_django.tracking.registry import TrackedModel, Tracking

logger = logging.getLogger("rail_django.audit")


_tracking = Tracking()
#: Saves in progress: (alias, table, primary key as text), pushed by pre_save, popped by post_save.
_saving: ContextVar[tuple[tuple[str, str, str], ...]] = ContextVar("rail_django_tracking_saving", default=())
#: The last bulk statement's entry, while no other statement has run since (batches merge into it).
_open: ContextVar[BulkEntry | None] = ContextVar("rail_django_tracking_open_bulk", default=None)
#: Bumped by every SAVEPOINT, RELEASE and ROLLBACK TO statement: two changes made in one epoch
#: commit or roll back together, so their records may be joined.
_epoch: ContextVar[int] = ContextVar("rail_django_tracking_epoch", default=0)
#: Saves remembered at most (a save that raised never pops its entry).
_MAX_SAVING = 16
_SAVEPOINT_STATEMENTS = ("SAVEPOINT", "RELEASE", "ROLLBACK")


def savepoint_epoch() -> int:
    """Changes made while this number stays the same share their transaction's fate."""
    return _epoch.get()


def tracks_any() -> bool:
    """Whether any model is tracked (else no connection needs the wrapper)."""
    return bool(_tracking.by_table)


def set_tracking(tracking: Tracking) -> None:
    global _tracking
    _tracking = tracking


def begin_save(using: str, spec: TrackedModel, pk: Any) -> None:
    """Mark the statements of this instance's ``save()`` as the signal receivers' to record."""
    key = "" if pk is None else str(pk)
    current = _saving.get()
    _saving.set((current + tuple((using, table, key) for table in spec.tables))[-_MAX_SAVING:])


def end_save(using: str, spec: TrackedModel) -> None:
    current = _saving.get()
    if current:
        tables = set(spec.tables)
        _saving.set(tuple(entry for entry in current if not (entry[0] == using and entry[1] in tables)))


def _is_save_statement(alias: str, table: str, kind: str, sql: str, params: Any, spec: TrackedModel) -> bool:
    saving = _saving.get()
    if not saving:
        return False
    keys = {entry[2] for entry in saving if entry[0] == alias and entry[1] == table}
    if not keys:
        return False
    if kind == "insert":  # a save inserts one row: "VALUES (...)" with no second row
        return "), (" not in sql and " UNNEST(" not in sql
    # A save updates one row by primary key: "... WHERE <table>.<pk> = %s", the key last.
    if not sql.rstrip().endswith("= %s") or not params:
        return False
    return spec.pk_text(params[-1]) in keys or "" in keys


@dataclass
class BulkEntry:
    """One ``data.bulk`` event being put together (a statement, or the batches of one call)."""

    alias: str
    table: str
    signature: tuple[Any, ...]
    context: dict[str, Any]
    ids: list[str] = field(default_factory=list)
    emitted: bool = False
    #: Rows of the last statement merged in: a later batch of the same call is never bigger.
    last_count: int = 0

    def continues(self, alias: str, table: str, signature: tuple[Any, ...], count: int) -> bool:
        """True when a statement is the next batch of this entry's ``bulk_update``/``bulk_create``:
        same table and columns, nothing else ran in between, and no transaction boundary."""
        return (
            not self.emitted and self.alias == alias and self.table == table and self.signature == signature
            and bool(signature[-1]) and count <= self.last_count and not transaction.get_autocommit(using=alias)
        )


def _merge(entry: BulkEntry, context: dict[str, Any], ids: list[str]) -> None:
    merged = entry.context
    merged["count"] += context["count"]
    merged["ids_known"] = merged["ids_known"] and context["ids_known"]
    room = statements.MAX_IDS - len(entry.ids)
    if room > 0:
        entry.ids.extend(ids[:room])
    rows = merged.get("rows")
    if rows is not None and len(rows) < statements.MAX_ROWS:
        rows.update(list(context.get("rows", {}).items())[:statements.MAX_ROWS - len(rows)])


def _record(connection: Any, spec: TrackedModel, signature: tuple[Any, ...], context: dict[str, Any],
            ids: list[str]) -> None:
    alias = connection.alias
    open_entry = _open.get()
    if open_entry is not None and open_entry.continues(alias, spec.table, signature, context["count"]):
        _merge(open_entry, context, ids)
        open_entry.last_count = context["count"]
        return
    entry = BulkEntry(alias, spec.table, signature, context, list(ids[:statements.MAX_IDS]), last_count=context["count"])
    _open.set(entry)

    def emitted() -> None:
        entry.emitted = True
        record.emit_change(
            EventType.DATA_BULK_OPERATION,
            action=f"{context['operation']} {spec.model_label} ({context['count']} rows)",
            resource_type=spec.label, resource_id=None, resource_name=None,
            context=context, lists={("ids",): entry.ids},
        )

    record.defer(alias, emitted)


def capture_writes(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    """The execute wrapper installed on every connection (see :func:`install_on`)."""
    if statements.internal.get() or not _tracking.by_table or not isinstance(sql, str):
        return execute(sql, params, many, context)
    if not sql.startswith(("UPDATE", "INSERT")):
        if _open.get() is not None:
            _open.set(None)  # another statement ran: the next bulk statement starts a new event
        if sql.startswith(_SAVEPOINT_STATEMENTS):
            _epoch.set(_epoch.get() + 1)
        return execute(sql, params, many, context)
    found = statement_table(sql)
    spec = _tracking.by_table.get(found[1]) if found else None
    connection = context["connection"]
    if spec is None or _is_save_statement(connection.alias, found[1], found[0], sql, params, spec):
        _open.set(None)
        return execute(sql, params, many, context)
    return _capture(execute, sql, params, many, context, spec, found[0])


def _capture(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any],
             spec: TrackedModel, kind: str) -> Any:
    connection = context["connection"]
    update = parse_update(sql, params) if kind == "update" and not many else None
    ids = None
    if update is not None:
        try:
            ids = statements.update_ids(connection, spec, update)
        except Exception:
            logger.exception("Could not list the rows of a bulk update of %s", spec.model_label)
    result = execute(sql, params, many, context)
    try:
        cursor = context["cursor"]
        if kind == "update":
            count = max(cursor.rowcount or 0, 0)
            built = statements.update_entry(connection, spec, update, ids, count) if count else None
        else:
            insert = parse_insert(sql, params) if not many else None
            count = statements.insert_count(connection, cursor, insert)
            built = statements.insert_entry(connection, cursor, spec, insert, count) if count else None
        if built is not None:
            _record(connection, spec, *built)
        else:
            _open.set(None)
    except Exception:  # the statement ran; recording it must never fail the caller
        logger.exception("Could not record a bulk write of %s", spec.model_label)
    return result
