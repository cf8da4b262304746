"""What one bulk statement did: the ids it touches, its row count, the values it wrote.

Helpers of :mod:`rail_django.capture.model_changes.bulk`. Their own queries (ids
before an ``UPDATE``, values after) go through the database's execute
wrappers like any other; :data:`internal` marks them so the bulk wrapper
lets them pass.
"""

from __future__ import annotations

from contextvars import ContextVar
from decimal import Decimal
from typing import Any

from django.db import models, transaction

from rail_django.capture.model_changes import record
from rail_django.capture.model_changes.sql import Insert, Update
from rail_django.conf import get_config
from rail_django.tracking.registry import TrackedModel
from rail_django.tracking.values import to_json

MAX_IDS = record.MAX_IDS
#: Rows whose written values are listed in ``rows`` (values that differ row by row).
MAX_ROWS = 100
_UNKNOWN = object()
#: Set while our own queries run: the bulk wrapper lets them pass untouched.
internal: ContextVar[bool] = ContextVar("rail_django_tracking_internal", default=False)


def _query(connection: Any, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Run one of our own reads; on PostgreSQL inside a transaction, in a savepoint (an error there
    would otherwise abort the caller's transaction)."""
    alias = connection.alias
    token = internal.set(True)
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
        internal.reset(token)


def _read_values(connection: Any, spec: TrackedModel, ids: list[str], attnames: list[str]) -> dict[str, dict[str, Any]]:
    """``{id: {attname: value}}`` read back through the ORM (Python values, whatever the backend)."""
    if not ids or not attnames:
        return {}
    token = internal.set(True)
    try:
        pk = spec.pk.attname
        rows = spec.model._base_manager.using(connection.alias).filter(pk__in=ids).values(pk, *attnames)
        return {str(row.pop(pk)): row for row in rows}
    finally:
        internal.reset(token)


def _field_value(spec: TrackedModel, attname: str, value: Any) -> Any:
    tracked = spec.by_attname[attname]
    return get_config().redaction_mask if tracked.masked and value is not None else to_json(tracked, value)


def _rows(spec: TrackedModel, values: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        pk: {spec.by_attname[a].name: _field_value(spec, a, v) for a, v in row.items()}
        for pk, row in list(values.items())[:MAX_ROWS]
    }


#: Aggregates that join integer ids into one text value, per vendor (MySQL's GROUP_CONCAT stops at
#: group_concat_max_len, 1,024 bytes by default, so MySQL reads the ids row by row).
_JOIN_IDS = {"sqlite": "group_concat(rail_id, ',')", "postgresql": "string_agg(rail_id::text, ',')"}


def update_ids(connection: Any, spec: TrackedModel, update: Update) -> list[str]:
    """The ids (up to :data:`MAX_IDS`) of the rows an ``UPDATE`` is about to change, as the events write them."""
    qn = connection.ops.quote_name
    column = f"{update.quoted_table}.{qn(spec.pk.column)}"
    select = f"SELECT {column} AS rail_id FROM {update.quoted_table}{update.tail} LIMIT {MAX_IDS}"
    joined = _JOIN_IDS.get(connection.vendor) if spec.integer_pk else None
    if joined:
        # One text value instead of a row and a Python int per id: a third of the time for 1,000 ids.
        rows = _query(connection, f"SELECT {joined} FROM ({select}) rail_ids", update.tail_params)
        return rows[0][0].split(",") if rows and rows[0][0] else []
    return [spec.pk_text(row[0]) for row in _query(connection, select, update.tail_params)]


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


def update_entry(connection: Any, spec: TrackedModel, update: Update | None, ids: list[str] | None,
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
    if connection.vendor == "sqlite" and insert.on_conflict is None and getattr(raw, "lastrowid", None):
        # One INSERT holds SQLite's write lock and numbers its rows one after another; every change of an
        # INSERT ... RETURNING is made on its first step, so lastrowid is the last row's (autocommit too,
        # as bulk_create of one batch runs on Django 6.1).
        last = int(raw.lastrowid)
        return [str(last - n) for n in reversed(range(min(count, MAX_IDS)))]
    if connection.vendor == "mysql" and insert.on_conflict is None and getattr(raw, "lastrowid", None):
        first = int(raw.lastrowid)  # LAST_INSERT_ID(): the first row of a multi-row INSERT
        return [str(first + n) for n in range(min(count, MAX_IDS))]
    return None


def insert_count(connection: Any, cursor: Any, insert: Insert | None) -> int:
    rowcount = cursor.rowcount
    if insert is not None and insert.rows is not None:
        # SQLite reports no row count for INSERT ... RETURNING until the rows are read.
        if connection.vendor == "sqlite" and insert.returning and insert.on_conflict is None:
            return insert.rows
        if rowcount is None or rowcount < 0:
            return insert.rows
    return max(rowcount or 0, 0)


def insert_entry(connection: Any, cursor: Any, spec: TrackedModel, insert: Insert | None,
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
