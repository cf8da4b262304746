"""Database sink: events become ``AuditEventModel`` rows, inserted in batches.

A batch is one transaction of plain ``INSERT ... VALUES (...), (...)``
statements whose text this module writes itself, with
``ON CONFLICT DO NOTHING`` (``INSERT IGNORE`` on MySQL/MariaDB): a retried or
replayed batch never duplicates an ``event_id``. On PostgreSQL with psycopg 3
a batch is first tried as one ``COPY`` (see :meth:`DatabaseSink._copy`). Each value goes through its
field's documented ``Field.get_db_prep_value()``, exactly what the ORM sends
for it (on PostgreSQL the JSON column's document is encoded by orjson rather than the json module:
the same stored value, see :class:`_JsonDumps`). This costs a fraction of ``bulk_create``, which builds a model
instance and compiles SQL per row; an ``AUDIT_EVENT_MODEL`` with columns
whose values come from ``pre_save()`` or the database (``auto_now``,
``db_default``, a generated or custom field) goes through
``bulk_create(..., ignore_conflicts=True)`` instead.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

import orjson
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connections, models, transaction
from django.db.models import NOT_PROVIDED
from django.utils import timezone

from rail_django.events.types import Outcome, SecurityEvent
from rail_django.partitioning import premaker, settings_from

#: Parameters one SQLite statement may hold (SQLite's compiled-in default: 32,766 since 3.32, 999 before).
#: A batch is a few multi-row statements rather than ``executemany``, which runs one statement per row and
#: releases and re-takes the GIL around each: the writer and the request threads would trade it per event.
SQLITE_MAX_PARAMETERS = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999
#: Rows per ``INSERT`` statement at most (SQLite).
MAX_ROWS_PER_STATEMENT = 500

_SUCCESS_OUTCOME = Outcome.SUCCESS.value
_AUTO_FIELDS = (models.AutoField, models.BigAutoField, models.SmallAutoField)
#: Stock field classes whose ``get_db_prep_save()`` returns a value of this Python type unchanged: such a
#: value (and None, for every field) is passed as it is, which saves most of the per-row work.
_UNCHANGED = {
    models.CharField: str, models.TextField: str, models.BooleanField: bool,
    models.IntegerField: int, models.BigIntegerField: int,
}


#: orjson leaves these to ``default`` (the field's encoder), whose output it would not match by itself:
#: DjangoJSONEncoder writes datetimes its own way and refuses dataclasses.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class _JsonDumps:
    """``json.dumps(value, cls=encoder)`` -- what Django's ``JSONField`` sends -- by orjson, 20x faster (0.2
    against 5 us for an event's ``additional_data``), with the encoder's ``default()`` for what orjson leaves
    to it. jsonb stores the parsed document, so the row is the same; anything orjson refuses (a non-str key,
    an int past 64 bits, a value the encoder refuses too) goes through ``json.dumps`` as before."""

    def __init__(self, encoder: type[json.JSONEncoder] | None) -> None:
        self.encoder = encoder
        self.default = encoder().default if encoder is not None else None

    def __call__(self, value: Any) -> bytes | str:
        try:
            return orjson.dumps(value, default=self.default, option=_ORJSON_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError included
            return json.dumps(value, cls=self.encoder)


def _json_converter(field: models.Field, vendor: str) -> Callable[..., Any] | None:
    """PostgreSQL with psycopg 3: a stock ``JSONField``'s value as Django's ``get_db_prep_value`` gives it,
    psycopg's documented ``Jsonb(value, dumps=...)``, with :class:`_JsonDumps` as ``dumps``. None for anything
    else (the field's own conversion)."""
    encoder = getattr(field, "encoder", None)
    if vendor != "postgresql" or type(field) is not models.JSONField or encoder not in (None, DjangoJSONEncoder):
        return None
    try:
        from psycopg.types.json import Jsonb
    except ImportError:  # psycopg2: Django adapts with psycopg2's Json
        return None
    dumps = _JsonDumps(encoder)
    return lambda value, connection, prepared: Jsonb(value, dumps=dumps)


def event_fields(event: SecurityEvent) -> dict[str, Any]:
    """The one mapping from an event to the audit model's field values."""
    timestamp = event.timestamp
    if not settings.USE_TZ and timezone.is_aware(timestamp):
        timestamp = timezone.make_naive(timestamp)
    return {
        "event_id": event.event_id,
        "event_type": event.event_type[:64],
        "severity": event.severity,
        "user_id": event.user_id,
        "username": (event.username or "")[:150] or None,
        "client_ip": event.client_ip,
        "user_agent": event.user_agent,
        "timestamp": timestamp,
        "request_path": event.request_path,
        "request_method": event.request_method,
        "additional_data": event.additional_data,
        "success": event.success,
        "error_message": event.error,
        "correlation_id": event.correlation_id,
        "session_id": event.session_id,
    }


def event_to_row(model: type[Any], event: SecurityEvent) -> Any:
    """An (unsaved) audit-model instance for ``event``."""
    return model(**event_fields(event))


def _plain_insert_fits(model: type[models.Model]) -> bool:
    """False when a column's value would come from ``pre_save()`` or the database rather than the event."""
    for field in model._meta.concrete_fields:
        # (getattr: Django 4.2 has neither generated fields nor db_default.)
        if getattr(field, "generated", False) or getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED:
            return False
        if isinstance(field, models.DateField):
            if field.auto_now or field.auto_now_add:
                return False
        elif type(field).pre_save is not models.Field.pre_save:
            return False
    return True


#: The stock ``AuditEventModel``'s inserted columns, in order: the fast row builders below know exactly
#: these. Any other model (``AUDIT_EVENT_MODEL``, a swapped or changed one) goes through its fields.
_STOCK_COLUMNS = (
    "event_id", "event_type", "severity", "user_id", "username", "client_ip", "user_agent", "timestamp",
    "request_path", "request_method", "additional_data", "success", "error_message", "correlation_id",
    "session_id", "chain_sequence", "chain_hash",
)
_UTC = dt_timezone.utc


def _stock_row_builder(
    model: type[models.Model], fields: list[models.Field], vendor: str, convert: Callable[[str, Any, Any], Any],
) -> Callable[[SecurityEvent, Any], list[Any]] | None:
    """For the stock audit model on SQLite (INSERT) or PostgreSQL (COPY): a function giving a row's values
    as this module writes them itself, for what the field conversions cost (~10 us a row, most of the
    writer's Python time). Each value is exactly what ``get_db_prep_value`` gives, or stores the same value:

    - SQLite: the UUID as ``.hex``, an aware UTC datetime as ``str()`` of its naive form (Django's
      ``adapt_datetimefield_value`` with the connection in UTC), the JSON as orjson's compact text
      (the form ``integrity.stored_form`` accepts; it reads back to the same value);
    - PostgreSQL COPY: the UUID and the aware datetime as they are (psycopg's dumpers, as for the ORM),
      the JSON as orjson's text, which ``jsonb`` parses to the value Django's ``Jsonb`` would send.

    A value outside these cases (a datetime in another zone, a non-``str`` text, JSON orjson refuses)
    goes through ``convert(attname, value, connection)``, the field's own conversion. None (no fast path) for
    other models, other vendors, ``USE_TZ = False`` or a database ``TIME_ZONE``.
    """
    from rail_django.models import AuditEventModel

    if model is not AuditEventModel or vendor not in ("sqlite", "postgresql"):
        return None
    if tuple(f.attname for f in fields) != _STOCK_COLUMNS or not settings.USE_TZ:
        return None
    sqlite = vendor == "sqlite"

    def row(event: SecurityEvent, connection: Any) -> list[Any]:
        def text(attname: str, value: Any) -> Any:
            return value if value is None or value.__class__ is str else convert(attname, value, connection)

        event_id, timestamp = event.event_id, event.timestamp
        if event_id.__class__ is not uuid.UUID:
            event_id = convert("event_id", event_id, connection)
        elif sqlite:
            event_id = event_id.hex
        if timestamp.__class__ is not datetime or timestamp.tzinfo is not _UTC:
            timestamp = convert("timestamp", timestamp, connection)
        elif sqlite:
            timestamp = str(timestamp.replace(tzinfo=None))
        data = event.additional_data
        try:
            data = orjson.dumps(data).decode()
        except TypeError:  # orjson.JSONEncodeError included
            data = convert("additional_data", data, connection)
        return [
            event_id, text("event_type", event.event_type[:64]), text("severity", event.severity),
            text("user_id", event.user_id), (event.username or "")[:150] or None,
            text("client_ip", event.client_ip or None), text("user_agent", event.user_agent), timestamp,
            text("request_path", event.request_path), text("request_method", event.request_method), data,
            event.outcome == _SUCCESS_OUTCOME, text("error_message", event.error),
            text("correlation_id", event.correlation_id), text("session_id", event.session_id), None, None,
        ]

    return row


class PlainInsert:
    """The ``INSERT`` text of one audit model on one database vendor, and each row's parameters."""

    def __init__(self, model: type[models.Model], vendor: str) -> None:
        opts = model._meta
        self.fields = [f for f in opts.concrete_fields if not (f.primary_key and isinstance(f, _AUTO_FIELDS))]
        quote = "`" if vendor == "mysql" else '"'
        columns = ", ".join(f"{quote}{f.column}{quote}" for f in self.fields)
        verb = "INSERT IGNORE INTO" if vendor == "mysql" else "INSERT INTO"
        self._head = f"{verb} {quote}{opts.db_table}{quote} ({columns}) VALUES "
        self.copy_statement = f"COPY {quote}{opts.db_table}{quote} ({columns}) FROM STDIN"
        self._row = "(" + ", ".join(["%s"] * len(self.fields)) + ")"
        self._tail = "" if vendor == "mysql" else " ON CONFLICT DO NOTHING"
        self._statements: dict[int, str] = {}
        self.rows_per_statement = (
            max(1, min(MAX_ROWS_PER_STATEMENT, SQLITE_MAX_PARAMETERS // len(self.fields))) if vendor == "sqlite" else 0
        )
        # (attname, the Python type passed unchanged or None, the field's conversion, the field) per column.
        self._columns = [
            (f.attname, _UNCHANGED.get(type(f)), _json_converter(f, vendor) or f.get_db_prep_value, f)
            for f in self.fields
        ]
        self._by_attname = {f.attname: f for f in self.fields}
        #: The stock model's row builder (SQLite INSERT, PostgreSQL COPY), or None: see _stock_row_builder.
        self.fast_row = _stock_row_builder(model, self.fields, vendor, self._convert)

    def _convert(self, attname: str, value: Any, connection: Any) -> Any:
        """One value the way :meth:`params` converts it (the fast row builder's way out)."""
        field = self._by_attname[attname]
        if value is None or value.__class__ is _UNCHANGED.get(type(field)):
            return value
        return field.get_db_prep_value(value, connection, True)

    def rows(self, events: Sequence[SecurityEvent], connection: Any, copy: bool = False) -> list[list[Any]]:
        """Every event's parameters: the fast rows when this model and vendor have them (on PostgreSQL only
        for ``COPY``, whose text input takes the JSON as text), else :meth:`params`."""
        fast = self.fast_row
        # (SQLite: Django stores datetimes in the connection's zone, UTC unless the database sets TIME_ZONE.)
        if fast is not None and settings.USE_TZ and (  # (USE_TZ read again: settings may change at run time)
            copy if connection.vendor == "postgresql" else connection.settings_dict.get("TIME_ZONE") in (None, "UTC")
        ):
            return [fast(event, connection) for event in events]
        return [self.params(event, connection) for event in events]

    def statement(self, rows: int) -> str:
        """The ``INSERT`` of ``rows`` rows (built once per row count)."""
        sql = self._statements.get(rows)
        if sql is None:
            sql = self._statements[rows] = self._head + ", ".join([self._row] * rows) + self._tail
        return sql

    def params(self, event: SecurityEvent, connection: Any) -> list[Any]:
        """The row's parameters: each value as ``Field.get_db_prep_value(value, connection, prepared=True)``
        gives it. The event's values are already what ``get_prep_value()`` returns (text, an aware or, with
        ``USE_TZ = False``, naive datetime, a UUID, JSON-ready data), hence ``prepared=True``."""
        values = event_fields(event)
        row = []
        for attname, unchanged, convert, field in self._columns:
            if attname in values:
                value = values[attname]
            else:  # a column a custom AUDIT_EVENT_MODEL adds: its default, prepared as the ORM would
                value = field.get_prep_value(field.get_default())
            row.append(value if value is None or value.__class__ is unchanged else convert(value, connection, True))
        return row


class DatabaseSink:
    """Inserts each batch in one transaction, idempotent on ``event_id`` (see the module docstring)."""

    name = "database"

    def __init__(self, alias: str = "default", partitioning: dict[str, Any] | None = None) -> None:
        self.alias = alias
        #: ``AUDIT_PARTITIONING`` (PostgreSQL): partitions are premade before a batch needs them.
        self.partitioning = settings_from(partitioning)
        self._inserts: dict[tuple[type, str], PlainInsert | None] = {}

    def write(self, events: Sequence[SecurityEvent]) -> None:
        from rail_django.models import get_audit_event_model

        model = get_audit_event_model()
        connection = connections[self.alias]
        if self.partitioning is not None and connection.vendor == "postgresql":
            # A query only when the batch comes within an interval of the last partition made.
            premaker.before_write(self.alias, model._meta.db_table, self.partitioning, max(event.timestamp for event in events))
        insert = self._insert_for(model, connection.vendor)
        if insert is None:
            rows = [event_to_row(model, event) for event in events]
            model._default_manager.db_manager(self.alias).bulk_create(rows, ignore_conflicts=True)
            return
        if len(events) == 1:  # one statement is its own transaction: no BEGIN/COMMIT round trips
            with connection.cursor() as cursor:
                cursor.execute(insert.statement(1), insert.rows(events, connection)[0])
            return
        if connection.vendor == "postgresql" and self._copy(insert, insert.rows(events, connection, copy=True), connection):
            return
        params = insert.rows(events, connection)
        with transaction.atomic(using=self.alias), connection.cursor() as cursor:
            step = insert.rows_per_statement
            if not step:
                cursor.executemany(insert.statement(1), params)
                return
            for start in range(0, len(params), step):
                chunk = params[start:start + step]
                cursor.execute(insert.statement(len(chunk)), [value for row in chunk for value in row])

    def _copy(self, insert: PlainInsert, params: list[list[Any]], connection: Any) -> bool:
        """PostgreSQL: the batch through psycopg 3's ``Cursor.copy()`` (COPY ... FROM STDIN), about twice as
        fast as the INSERT. COPY cannot skip a conflicting row: on a duplicate ``event_id`` (a retried or
        replayed batch) its transaction is rolled back and this returns False, as it does with psycopg2
        (no ``Cursor.copy()``); the caller then inserts with ``ON CONFLICT DO NOTHING``."""
        try:
            import psycopg
        except ImportError:  # psycopg2
            return False
        try:
            with transaction.atomic(using=self.alias), connection.cursor() as cursor:
                # (Django's cursor hands psycopg's own methods through; its errors arrive unwrapped.)
                with cursor.copy(insert.copy_statement) as copy:
                    for row in params:
                        copy.write_row(row)
        except (IntegrityError, psycopg.IntegrityError):
            return False
        return True

    def _insert_for(self, model: type[models.Model], vendor: str) -> PlainInsert | None:
        key = (model, vendor)
        if key not in self._inserts:
            self._inserts[key] = PlainInsert(model, vendor) if _plain_insert_fits(model) else None
        return self._inserts[key]

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass
