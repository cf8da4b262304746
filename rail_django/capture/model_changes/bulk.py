"""Bulk writes of tracked models, seen as SQL: ``QuerySet.update()``, ``bulk_update()``, ``bulk_create()``.

Django sends no signal for these, so a database execute wrapper (Django's
"database instrumentation" hook) looks at every statement of every
connection. Statements that are not an ``UPDATE`` or ``INSERT`` of a tracked
table pass straight through (a prefix test). For one that is:

* ``UPDATE``: before it runs, the ids of the rows its ``WHERE`` clause
  matches are read (at most :data:`MAX_IDS`, in the same transaction); after
  it, the count is the database's row count, and the values written are read
  back (one row for ``field = value`` assignments, the listed rows for
  expressions and ``bulk_update``'s ``CASE``).
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
from decimal import Decimal
from typing import Any

from django.db import models, transaction

from rail_django.capture.model_changes import record
from rail_django.capture.model_changes.sql import Insert, Update, parse_insert, parse_update, statement_table
from rail_django.conf import get_config
from rail_django.events.types import EventType
from rail_django.tracking.registry import TrackedModel, Tracking
from rail_django.tracking.values import to_json

logger = logging.getLogger("rail_django.audit")

MAX_IDS = record.MAX_IDS
_UNKNOWN = object()
#: Rows whose written values are listed in ``rows`` (values that differ row by row).
MAX_ROWS = 100

_tracking = Tracking()
#: Our own queries (ids before, values after) run through the wrapper too: they pass untouched.
_internal: ContextVar[bool] = ContextVar("rail_django_tracking_internal", default=False)
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
    if kind == "insert":  # a save inserts one row
        return True
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


def _query(connection: Any, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Run one of our own reads; on PostgreSQL inside a transaction, in a savepoint (an error there
    would otherwise abort the caller's transaction)."""
    alias = connection.alias
    token = _internal.set(True)
    try:
        guard = connection.vendor == "postgresql" and not transaction.get_autocommit(using=alias)
        sid = transaction.savepoint(using=alias) if guard else None
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
        except Exception:
            if sid is not None:
                transaction.savepoint_rollback(sid, using=alias)
            raise
        if sid is not None:
            transaction.savepoint_commit(sid, using=alias)
        return rows
    finally:
        _internal.reset(token)


def _read_values(connection: Any, spec: TrackedModel, ids: list[str], attnames: list[str]) -> dict[str, dict[str, Any]]:
    """``{id: {attname: value}}`` read back through the ORM (Python values, whatever the backend)."""
    if not ids or not attnames:
        return {}
    token = _internal.set(True)
    try:
        pk = spec.pk.attname
        rows = spec.model._base_manager.using(connection.alias).filter(pk__in=ids).values(pk, *attnames)
        return {str(row.pop(pk)): row for row in rows}
    finally:
        _internal.reset(token)


def _field_value(spec: TrackedModel, attname: str, value: Any) -> Any:
    tracked = spec.by_attname[attname]
    return get_config().redaction_mask if tracked.masked and value is not None else to_json(tracked, value)


def _rows(spec: TrackedModel, values: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        pk: {spec.by_attname[a].name: _field_value(spec, a, v) for a, v in row.items()}
        for pk, row in list(values.items())[:MAX_ROWS]
    }


def _update_ids(connection: Any, spec: TrackedModel, update: Update) -> list[str]:
    qn = connection.ops.quote_name
    sql = f"SELECT {update.quoted_table}.{qn(spec.pk.column)} FROM {update.quoted_table}{update.tail} LIMIT {MAX_IDS}"
    return [spec.pk_text(row[0]) for row in _query(connection, sql, update.tail_params)]


#: Parameter types that are the field's own value on every backend (not an encoding: dates and
#: UUIDs are text on SQLite and MySQL, JSON is text or an adapter object).
_PLAIN_PARAMS = (str, int, float, bool, Decimal)
_ENCODED_FIELDS = (models.DateField, models.TimeField, models.DurationField, models.UUIDField, models.JSONField,
                   models.BinaryField, models.FileField)


def _constant(tracked: Any, assignment: Any) -> Any:
    """The value of ``"col" = %s`` / ``= NULL`` read from the statement, or _UNKNOWN (read it back)."""
    if assignment.expr == "NULL":
        return None
    value = assignment.params[0] if assignment.params else None
    if type(value) not in _PLAIN_PARAMS or isinstance(tracked.field, _ENCODED_FIELDS):
        return _UNKNOWN
    try:
        return tracked.field.to_python(value)
    except Exception:
        return _UNKNOWN


def _update_entry(connection: Any, spec: TrackedModel, update: Update | None, ids: list[str] | None,
                  count: int) -> tuple[tuple[Any, ...], dict[str, Any], list[str]] | None:
    context: dict[str, Any] = {"operation": "update", "model": spec.model_label, "count": count,
                               "ids": [], "ids_known": ids is not None, "changes": {}}
    if update is None:
        return ("update", "raw"), context, []
    tracked = [(a, spec.by_column[a.column]) for a in update.assignments if a.column in spec.by_column]
    if not tracked:
        return None  # only untracked (excluded) columns were written
    varying = [t.attname for a, t in tracked if not a.constant]
    listed = ids or []
    unknown = []
    for assignment, field_ in tracked:
        if assignment.constant:
            value = _constant(field_, assignment)
            if value is _UNKNOWN:
                unknown.append(field_.attname)
            else:
                context["changes"][field_.name] = _field_value(spec, field_.attname, value)
    if unknown and listed:  # values whose parameter is the database's encoding: read one row back
        first = _read_values(connection, spec, listed[:1], unknown)
        for attname, value in next(iter(first.values()), {}).items():
            context["changes"][spec.by_attname[attname].name] = _field_value(spec, attname, value)
    if varying and listed:
        context["rows"] = _rows(spec, _read_values(connection, spec, listed[:MAX_ROWS], varying))
    # bulk_update's batches (CASE WHEN id = ... per row) may continue one another; update() calls may not.
    batch = all("CASE WHEN" in a.expr[:40].upper() for a in update.assignments)
    signature = ("update", tuple(a.column for a in update.assignments), batch)
    return signature, context, listed


def _insert_ids(connection: Any, cursor: Any, spec: TrackedModel, insert: Insert | None, count: int) -> list[str] | None:
    if insert is None:
        return None
    pk_column = spec.pk.column
    raw = getattr(cursor, "cursor", None)  # the driver's cursor under Django's CursorWrapper
    if insert.returning and pk_column in insert.returning and connection.vendor != "sqlite" and hasattr(raw, "scroll"):
        rows = raw.fetchall()
        raw.scroll(0, mode="absolute")  # Django reads the returned rows next
        index = insert.returning.index(pk_column)
        return [spec.pk_text(row[index]) for row in rows]
    if insert.values is not None and pk_column in insert.values:
        return [spec.pk_text(value) for value in insert.values[pk_column]]
    if pk_column in insert.columns:
        return None
    if connection.vendor == "sqlite" and not transaction.get_autocommit(using=connection.alias):
        # No other connection can insert until this transaction ends: the newest ids are these rows.
        qn = connection.ops.quote_name
        sql = f"SELECT {qn(pk_column)} FROM {qn(spec.table)} ORDER BY {qn(pk_column)} DESC LIMIT %s"
        return [str(row[0]) for row in reversed(_query(connection, sql, [min(count, MAX_IDS)]))]
    if connection.vendor == "mysql" and insert.on_conflict is None and getattr(raw, "lastrowid", None):
        first = int(raw.lastrowid)  # LAST_INSERT_ID(): the first row of a multi-row INSERT
        return [str(first + n) for n in range(min(count, MAX_IDS))]
    return None


def _insert_count(connection: Any, cursor: Any, insert: Insert | None) -> int:
    rowcount = cursor.rowcount
    if insert is not None and insert.rows is not None:
        # SQLite reports no row count for INSERT ... RETURNING until the rows are read.
        if connection.vendor == "sqlite" and insert.returning and insert.on_conflict is None:
            return insert.rows
        if rowcount is None or rowcount < 0:
            return insert.rows
    return max(rowcount or 0, 0)


def _insert_entry(connection: Any, cursor: Any, spec: TrackedModel, insert: Insert | None,
                  count: int) -> tuple[tuple[Any, ...], dict[str, Any], list[str]]:
    ids = _insert_ids(connection, cursor, spec, insert, count)
    context: dict[str, Any] = {"operation": "create", "model": spec.model_label, "count": count,
                               "ids": [], "ids_known": ids is not None, "changes": {}}
    if insert is not None and insert.on_conflict:
        context["on_conflict"] = insert.on_conflict
    if ids:
        context["rows"] = _rows(spec, _read_values(connection, spec, ids[:MAX_ROWS], list(spec.attnames)))
    signature = ("create", tuple(insert.columns) if insert else "raw", insert is not None)
    return signature, context, ids or []


def _merge(entry: BulkEntry, context: dict[str, Any], ids: list[str]) -> None:
    merged = entry.context
    merged["count"] += context["count"]
    merged["ids_known"] = merged["ids_known"] and context["ids_known"]
    room = MAX_IDS - len(entry.ids)
    if room > 0:
        entry.ids.extend(ids[:room])
    rows = merged.get("rows")
    if rows is not None and len(rows) < MAX_ROWS:
        rows.update(list(context.get("rows", {}).items())[:MAX_ROWS - len(rows)])


def _record(connection: Any, spec: TrackedModel, signature: tuple[Any, ...], context: dict[str, Any],
            ids: list[str]) -> None:
    alias = connection.alias
    open_entry = _open.get()
    if open_entry is not None and open_entry.continues(alias, spec.table, signature, context["count"]):
        _merge(open_entry, context, ids)
        open_entry.last_count = context["count"]
        return
    entry = BulkEntry(alias, spec.table, signature, context, list(ids[:MAX_IDS]), last_count=context["count"])
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
    if _internal.get() or not _tracking.by_table or not isinstance(sql, str):
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
            ids = _update_ids(connection, spec, update)
        except Exception:
            logger.exception("Could not list the rows of a bulk update of %s", spec.model_label)
    result = execute(sql, params, many, context)
    try:
        cursor = context["cursor"]
        if kind == "update":
            count = max(cursor.rowcount or 0, 0)
            built = _update_entry(connection, spec, update, ids, count) if count else None
        else:
            insert = parse_insert(sql, params) if not many else None
            count = _insert_count(connection, cursor, insert)
            built = _insert_entry(connection, cursor, spec, insert, count) if count else None
        if built is not None:
            _record(connection, spec, *built)
        else:
            _open.set(None)
    except Exception:  # the statement ran; recording it must never fail the caller
        logger.exception("Could not record a bulk write of %s", spec.model_label)
    return result
