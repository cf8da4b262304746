"""Database sink: events become ``AuditEventModel`` rows, inserted in batches.

A batch is one transaction: prepared multi-row ``INSERT`` statements on
SQLite (up to :data:`MAX_ROWS_PER_STATEMENT` rows each), the prepared
``INSERT`` run with ``executemany`` elsewhere (psycopg pipelines it, MySQL
drivers rewrite it into multi-row statements). The statement and each
column's conversion are worked out once
per model and database vendor, and each row is built straight from the event
(no model instance, no per-row SQL compilation), which is several times
cheaper than ``bulk_create``. A custom ``AUDIT_EVENT_MODEL`` with fields whose
value the database or ``pre_save`` computes (``auto_now``, ``db_default``, a
custom field) goes through ``bulk_create`` instead. Either way the insert is
idempotent on ``event_id`` (conflicts are ignored), so a retried batch never
duplicates rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timezone as dt_timezone
from typing import Any

import orjson
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models, transaction
from django.db.models.constants import OnConflict
from django.db.models.fields import NOT_PROVIDED, AutoFieldMixin
from django.utils import timezone

from rail_django.events.types import SecurityEvent

#: Rows per INSERT statement: few statements per batch, and far below MySQL's max_allowed_packet.
MAX_ROWS_PER_STATEMENT = 500

#: Field types whose database value is the Python value given here (str/None, bool, int).
_PLAIN_TYPES = (models.CharField, models.TextField, models.BooleanField, models.BigIntegerField, models.IntegerField)


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


def _field_conversion(field: models.Field, value: Any, connection: Any) -> Any:
    return field.get_db_prep_save(value, connection)


def _uuid_hex(field: models.Field, value: Any, connection: Any) -> Any:
    return value.hex if isinstance(value, uuid.UUID) else field.get_db_prep_save(value, connection)


def _datetime(field: models.Field, value: Any, connection: Any) -> Any:
    # What DateTimeField.get_db_prep_save ends with; the event's timestamp is already a datetime in
    # the project's USE_TZ form, so its checks and conversions have nothing to do.
    return connection.ops.adapt_datetimefield_value(value)


def _datetime_text(field: models.Field, value: Any, connection: Any) -> Any:
    # SQLite and MySQL store a UTC timestamp as the text of the naive datetime (their
    # adapt_datetimefield_value); the usual case, a UTC timestamp and a UTC connection, directly.
    if value.tzinfo is dt_timezone.utc and connection.timezone_name == "UTC":
        return str(value.replace(tzinfo=None))
    return connection.ops.adapt_datetimefield_value(value)


def _json_text(field: models.Field, value: Any, connection: Any) -> Any:
    # The JSON column as text (SQLite, MySQL/MariaDB): orjson, several times faster than the
    # json module; whatever it refuses (integers beyond 64 bits, non-string keys) takes the field's path.
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return field.get_db_prep_save(value, connection)


def _conversion(field: models.Field, connection: Any) -> Any:
    """How a column's value becomes its database parameter (``None``: as it is)."""
    kind = type(field)
    if kind in _PLAIN_TYPES:
        return None
    if kind is models.UUIDField and not connection.features.has_native_uuid_field:
        return _uuid_hex
    text_backend = connection.vendor in ("sqlite", "mysql")
    if kind is models.DateTimeField:
        return _datetime_text if text_backend else _datetime
    # An event's JSON holds only what the redactor left: str, int, float, bool, None, lists, dicts.
    if kind is models.JSONField and field.encoder in (None, DjangoJSONEncoder) and text_backend:
        return _json_text
    return _field_conversion


def _max_parameters(connection: Any) -> int:
    """Most parameters one statement may have on this connection."""
    if connection.vendor == "sqlite":
        import sqlite3

        connection.ensure_connection()
        try:  # the library's real limit (32766 since SQLite 3.32), not Django's conservative 999
            return connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        except AttributeError:  # Python < 3.11
            pass
    return connection.features.max_query_params or 65_535  # PostgreSQL's wire-protocol limit


class PreparedInsert:
    """The ``INSERT`` of one audit model on one database vendor, with each column's conversion."""

    def __init__(self, model: type[models.Model], connection: Any) -> None:
        opts = model._meta
        fields = [
            f for f in opts.concrete_fields
            if not getattr(f, "generated", False) and not (f is opts.pk and isinstance(f, AutoFieldMixin))
        ]
        self.fields = fields
        # (attname, field, conversion or None) per column.
        self.columns = [(f.attname, f, _conversion(f, connection)) for f in fields]
        qn = connection.ops.quote_name
        suffix = connection.ops.on_conflict_suffix_sql(fields, OnConflict.IGNORE, None, None)
        self._head = (
            f"{connection.ops.insert_statement(on_conflict=OnConflict.IGNORE)} {qn(opts.db_table)} "
            f"({', '.join(qn(f.column) for f in fields)}) VALUES "
        )
        self._row = f"({', '.join(['%s'] * len(fields))})"
        self._suffix = f" {suffix}" if suffix else ""
        self._statements: dict[int, str] = {}
        self.sql = self.statement(1)
        self.rows_per_statement = max(1, min(MAX_ROWS_PER_STATEMENT, _max_parameters(connection) // len(fields)))

    def statement(self, rows: int) -> str:
        """The ``INSERT`` of ``rows`` rows (one ``VALUES`` list each)."""
        sql = self._statements.get(rows)
        if sql is None:
            sql = self._statements[rows] = self._head + ", ".join([self._row] * rows) + self._suffix
        return sql

    @staticmethod
    def supports(model: type[models.Model]) -> bool:
        """False when a column's value would come from ``pre_save`` or the database rather than the event."""
        for field in model._meta.concrete_fields:
            if getattr(field, "generated", False) or getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED:
                return False
            if isinstance(field, models.DateField):
                if field.auto_now or field.auto_now_add:
                    return False
            elif type(field).pre_save is not models.Field.pre_save:
                return False
        return True

    def params(self, event: SecurityEvent, connection: Any) -> list[Any]:
        values = event_fields(event)
        row = []
        for attname, field, convert in self.columns:
            value = values[attname] if attname in values else field.get_default()
            row.append(convert(field, value, connection) if convert is not None and value is not None else value)
        return row


class DatabaseSink:
    """Inserts each batch with prepared multi-row ``INSERT`` statements, idempotent on ``event_id``."""

    name = "database"

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias
        self._prepared: dict[tuple[type, str], PreparedInsert | None] = {}

    def write(self, events: Sequence[SecurityEvent]) -> None:
        from rail_django.models import get_audit_event_model

        model = get_audit_event_model()
        connection = connections[self.alias]
        insert = self._insert_for(model, connection)
        if insert is None or not connection.features.supports_ignore_conflicts:
            rows = [event_to_row(model, event) for event in events]
            # ignore_conflicts: a replayed or retried batch must not duplicate rows.
            model.objects.using(self.alias).bulk_create(rows, ignore_conflicts=True)
            return
        params = [insert.params(event, connection) for event in events]
        if len(params) == 1:  # one statement is its own transaction (no BEGIN/COMMIT round trips)
            with connection.cursor() as cursor:
                cursor.execute(insert.sql, params[0])
            return
        with transaction.atomic(using=self.alias, savepoint=False), connection.cursor() as cursor:
            if connection.vendor != "sqlite":
                # psycopg pipelines executemany, MySQL drivers rewrite it into multi-row INSERTs.
                cursor.executemany(insert.sql, params)
                return
            # sqlite3's executemany runs (and releases the GIL around) one statement per row: the
            # writer thread and the request threads would hand the GIL back and forth for every
            # event. Multi-row INSERTs do that once per statement (failed login 1.23x -> 1.19x).
            step = insert.rows_per_statement
            for start in range(0, len(params), step):
                chunk = params[start:start + step]
                cursor.execute(insert.statement(len(chunk)), [value for row in chunk for value in row])

    def _insert_for(self, model: type[models.Model], connection: Any) -> PreparedInsert | None:
        key = (model, connection.vendor)
        if key not in self._prepared:
            self._prepared[key] = PreparedInsert(model, connection) if PreparedInsert.supports(model) else None
        return self._prepared[key]

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass

