"""``audit_management export``: stream stored events as JSON, JSON lines, CSV or OCSF.

JSON, JSON lines and CSV read the rows as the database driver returns them
(a server-side cursor inside a transaction on PostgreSQL, ``fetchmany`` on
SQLite) and turn each column into its output text with a per-column encoder
(:class:`RowEncoder`), instead of building Django values and a dict per row:
the stored JSON text of a ``JSONField`` is copied as it is when it is already
in the exact form ``json.dumps`` would give it back (:func:`is_canonical_json`),
timestamps and UUIDs are formatted straight from what the driver returned.
Any value a fast encoder does not recognise goes through Django's own
converters and the reference formatting, so the output is byte for byte what
the row-by-row ORM path (:func:`stream_rows`, still used for OCSF) writes.

On MySQL/MariaDB, whose drivers buffer a whole result, rows are read in
keyset-paginated chunks. Each chunk is written out before the next is read,
so memory stays flat at any table size. A file is written beside its target
and moved into place at the end, so a failed export never leaves a
half-written file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager, nullcontext
from datetime import datetime
from datetime import timezone as dt_timezone
from itertools import repeat
from json.encoder import encode_basestring
from operator import itemgetter
from pathlib import Path
from typing import Any, TextIO
from uuid import UUID

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.core.management.base import CommandError
from django.db import DatabaseError, connections, models, transaction
from django.db.models import Q, QuerySet

from rail_django.operations.common import invoked_by, stored_events, time_range
from rail_django.operations.ocsf import to_ocsf
from rail_django.security import EventType, security

FORMATS = ("json", "jsonl", "csv", "ocsf")
DEFAULT_CHUNK_SIZE = 2000
#: Cell prefixes a spreadsheet would run as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def export_fields(model: type[Any]) -> list[str]:
    """Every column of the audit model, in model order."""
    return [field.attname for field in model._meta.concrete_fields]


def filtered_events(
    days: int | None = None,
    since: str | None = None,
    until: str | None = None,
    event_types: list[str] | None = None,
) -> QuerySet:
    """The events an export covers. An event type ending in ``.*`` matches a prefix (``auth.*``)."""
    start, end = time_range(days, since, until)
    queryset = stored_events()
    if start is not None:
        queryset = queryset.filter(timestamp__gte=start)
    if end is not None:
        queryset = queryset.filter(timestamp__lt=end)
    if event_types:
        match = Q()
        for name in event_types:
            match |= Q(event_type__startswith=name[:-1]) if name.endswith(".*") else Q(event_type=name)
        queryset = queryset.filter(match)
    return queryset


def stream_rows(queryset: QuerySet, fields: list[str], chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[dict[str, Any]]:
    """Rows as dicts of Django values, oldest first, read ``chunk_size`` at a time."""
    ordered = queryset.order_by("timestamp", "pk")
    if connections[queryset.db].vendor != "mysql":
        for values in ordered.values_list(*fields).iterator(chunk_size=chunk_size):
            yield dict(zip(fields, values, strict=True))
        return
    # MySQL drivers load a whole result into memory: walk the (timestamp, pk) order in pages instead.
    pk_name = queryset.model._meta.pk.attname
    last: tuple[Any, Any] | None = None
    while True:
        page = ordered
        if last is not None:
            page = ordered.filter(Q(timestamp__gt=last[0]) | Q(timestamp=last[0], pk__gt=last[1]))
        rows = [dict(zip(fields, values, strict=True)) for values in page.values_list(*fields)[:chunk_size]]
        if not rows:
            return
        yield from rows
        last = (rows[-1]["timestamp"], rows[-1][pk_name])


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


#: ``json.dumps(value, ensure_ascii=False, default=str)``, without building an encoder per call.
_json_text = json.JSONEncoder(ensure_ascii=False, default=str).encode
_sorted_json_text = json.JSONEncoder(ensure_ascii=False, default=str, sort_keys=True).encode

_TYPED_FIELDS = (models.DateTimeField, models.DateField, models.TimeField, models.UUIDField)


def _record_value(value: Any) -> Any:
    return str(value) if isinstance(value, UUID) else value.isoformat()


def record_maker(model: type[Any], fields: list[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A function turning a row into JSON-ready values (ISO 8601 timestamps with microseconds, UUIDs as text).

    Only the columns whose type needs it are converted, once per row.
    """
    by_name = {f.attname: f for f in model._meta.concrete_fields}
    typed = [name for name in fields if isinstance(by_name[name], _TYPED_FIELDS)]

    def make(row: dict[str, Any]) -> dict[str, Any]:
        for name in typed:
            value = row[name]
            if value is not None:
                row[name] = _record_value(value)
        return row

    return make


def csv_cell(value: Any) -> str:
    """One CSV cell: JSON for structures, ``true``/``false``, empty for None, formulas neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        text = _sorted_json_text(value)
    else:
        text = str(_plain(value))
    # A leading apostrophe makes spreadsheets show the text instead of evaluating it.
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


# -- stored JSON text that can be copied as it is ------------------------------------------------

_JSON_CHARS = r'[^"\\\x00-\x1f]*'
# json.dumps(ensure_ascii=False) escapes only these: the short forms, and \u00XX for the other control characters.
_JSON_ESCAPE = r'\\(?:["\\bfnrt]|u00(?:0[0-7bef]|1[0-9a-f]))'
_JSON_STRING = rf'"{_JSON_CHARS}(?:{_JSON_ESCAPE}{_JSON_CHARS})*"'
# Integers up to 18 digits (json.loads refuses very long ones, and "-0" comes back as "0").
_JSON_INT = r'(?:0|-?[1-9][0-9]{0,17})'
# Floats float.__repr__ writes in positional notation, with at most 15 significant digits: any such
# decimal is the shortest text of the nearest double, so json.loads + json.dumps gives it back unchanged.
_JSON_FLOAT = (
    r'-?(?:(?![0-9.]{17})[1-9][0-9]*\.(?:0|[0-9]*[1-9])'
    r'|0\.(?:0|0{0,3}[1-9](?:[0-9]{0,13}[1-9])?))'
)
_JSON_ATOM = rf'{_JSON_STRING}|{_JSON_FLOAT}|{_JSON_INT}|true|false|null'
# Between two ", " or ": " separators: opening brackets, one value, closing brackets (or an empty
# container). The text is valid JSON already (see json_column_guarantees), so this lexical check need
# not match brackets; it rejects any other spacing, escape or number form.
_JSON_SEGMENT = rf'(?:[{{\[]*(?:{_JSON_ATOM})[}}\]]*|[{{\[]+[}}\]]*)'
_CANONICAL_JSON = re.compile(rf'{_JSON_SEGMENT}(?:[,:] {_JSON_SEGMENT})*')


_third = itemgetter(2)


def _may_repeat_a_key(text: str) -> bool:
    """For canonical JSON text: False when no two keys of the text are equal (True may be a false alarm).

    json.loads keeps the last value of a repeated key, so such a text does not come back as it was.
    """
    if "\\" in text:
        return True
    # Without escapes, '": ' follows each key; the last quote before it opens the key. (A string that
    # starts with ": " adds a piece too: a false alarm at worst, and equal keys still give equal pieces.)
    pieces = text.split('": ')
    count = len(pieces) - 1
    if count < 2:
        return False
    return len(set(map(_third, map(str.rpartition, pieces, repeat('"', count))))) != count


def is_canonical_json(text: str, *, unique_keys: bool = False) -> bool:
    """Whether ``json.dumps(json.loads(text), ensure_ascii=False)`` is ``text`` itself, for valid JSON text.

    ``unique_keys``: the database keeps one value per key (jsonb, MySQL's JSON type); otherwise a text
    that may repeat a key is refused. False only costs speed: the caller then decodes and re-encodes.
    """
    if _CANONICAL_JSON.fullmatch(text) is None:
        return False
    return unique_keys or not _may_repeat_a_key(text)


#: PostgreSQL type OIDs: jsonb keeps one value per key, json keeps the text as written.
_JSONB_OID, _JSON_OID = 3802, 114


def json_column_guarantees(connection: Any, table: str, column: str) -> tuple[bool, bool]:
    """``(valid, unique_keys)``: does the database hold only valid JSON in this column, one value per key?

    Read from the schema: jsonb / json (PostgreSQL), MySQL's JSON type, a ``JSON_VALID`` check
    (SQLite, MariaDB; what Django creates for a ``JSONField``). Unknown: ``(False, False)``.
    """
    try:
        with connection.cursor() as cursor:
            found = [info for info in connection.introspection.get_table_description(cursor, table)
                     if info.name == column]
    except (DatabaseError, LookupError):
        return False, False
    if not found:
        return False, False
    info = found[0]
    if connection.vendor == "postgresql":
        return info.type_code in (_JSONB_OID, _JSON_OID), info.type_code == _JSONB_OID
    if connection.vendor == "mysql" and str(getattr(info, "data_type", "")).lower() == "json":
        return True, True
    return bool(getattr(info, "has_json_constraint", False)), False


# -- raw rows ------------------------------------------------------------------------------------


def _never(text: str) -> bool:
    return False


def _ops_function(connection: Any, name: str) -> Any:
    """Django's own ``DatabaseOperations.<name>`` of this vendor's stock backend (None if unknown)."""
    module = {"sqlite": "sqlite3", "mysql": "mysql"}.get(connection.vendor)
    if module is None:
        return None
    import importlib

    try:
        ops_class = importlib.import_module(f"django.db.backends.{module}.operations").DatabaseOperations
    except ImportError:
        return None
    return getattr(ops_class, name, None)


class Column:
    """One selected column: how its raw driver value becomes the value ``values_list()`` gives.

    ``kind`` names the fast encoding that reproduces Django's conversion for the usual raw values:
    ``text``, ``int``, ``bool``, ``uuid-hex`` (32 hex digits, SQLite/MySQL), ``uuid`` (PostgreSQL),
    ``datetime`` or ``json`` (stored JSON text); ``generic`` always goes through :meth:`convert`.
    """

    def __init__(self, field: models.Field, converters: list[Any], expression: Any, connection: Any) -> None:
        self.field = field
        self.name = field.attname
        self.converters = converters
        self.expression = expression
        self.connection = connection
        #: For ``json``: the database keeps one value per key (jsonb, MySQL's JSON type).
        self.json_unique_keys = False
        self.kind = self._kind()
        #: Set when the driver returns the UUID's text instead of a ``UUID`` (PostgreSQL, see :class:`RawRows`).
        self.uuid_as_text = False

    def _kind(self) -> str:
        field, converters, connection = self.field, self.converters, self.connection
        field_type = type(field)
        stock = [getattr(c, "__func__", c) for c in converters]
        if field_type in (models.CharField, models.TextField, models.GenericIPAddressField, models.EmailField,
                          models.SlugField, models.URLField):
            return "text" if not converters else "generic"
        if field_type in (models.AutoField, models.BigAutoField, models.SmallAutoField, models.IntegerField,
                          models.BigIntegerField, models.SmallIntegerField, models.PositiveIntegerField,
                          models.PositiveBigIntegerField, models.PositiveSmallIntegerField):
            return "int" if not converters else "generic"
        if field_type is models.BooleanField:
            # The stock converters map 0/1 to False/True and leave True/False as they are.
            known = _ops_function(connection, "convert_booleanfield_value")
            return "bool" if all(c is known for c in stock) else "generic"
        if field_type is models.UUIDField:
            if not converters:
                return "uuid"
            return "uuid-hex" if stock == [_ops_function(connection, "convert_uuidfield_value")] else "generic"
        if field_type is models.DateTimeField:
            if not converters or stock == [_ops_function(connection, "convert_datetimefield_value")]:
                return "datetime"
            return "generic"
        if field_type is models.JSONField and field.decoder is None and stock == [models.JSONField.from_db_value]:
            valid, self.json_unique_keys = json_column_guarantees(connection, field.model._meta.db_table, field.column)
            # Copying the text as stored needs it to be valid JSON: the check below is lexical only.
            return "json" if valid else "generic"
        return "generic"

    def convert(self, value: Any) -> Any:
        """The value Django's ``values_list()`` gives for this raw value."""
        if self.uuid_as_text and value is not None:
            value = UUID(value)
        for converter in self.converters:
            value = converter(value, self.expression, self.connection)
        return value

    def naive_datetime_suffix(self) -> str | None:
        """For ``datetime``: what Django's converter adds to ``isoformat()`` of a naive value, if constant.

        SQLite (the driver parses the stored text) and MySQL return naive datetimes in the connection's
        zone, which the converter makes aware: with UTC that only appends "+00:00". PostgreSQL's are aware.
        """
        if not self.converters:
            return None
        if not settings.USE_TZ:
            return ""
        return "+00:00" if self.connection.timezone is dt_timezone.utc else None

    def datetime_text(self, value: Any) -> str | None:
        """ISO 8601 text of Django's value for this raw datetime, or None when only the converters know."""
        if value.__class__ is not datetime:
            return None
        if not self.converters:  # PostgreSQL: the driver's aware datetime is final
            return value.isoformat()
        if value.utcoffset() is None:
            return (value.replace(tzinfo=self.connection.timezone) if settings.USE_TZ else value).isoformat()
        # Aware already: SQLite's converter keeps it; MySQL's refuses it (let it raise, as before).
        return value.isoformat() if self.connection.vendor == "sqlite" else None


class RowEncoder:
    """Turns one raw row into a JSON object text or a list of CSV cells, exactly as the ORM path would.

    The per-row function is generated once per export, one expression per column, because a function
    call per column costs about as much as everything else in the row. Each expression handles the
    values the driver normally returns and hands anything else to ``G<i>``: Django's converters, then
    the formatting of the row-by-row path.
    """

    def __init__(self, fmt: str, columns: Sequence[Column]) -> None:
        self.fmt = fmt
        self.columns = list(columns)
        self._namespace: dict[str, Any] = {
            "S": encode_basestring, "NULL": "null", "TRUE": "true", "FALSE": "false", "EMPTY": "", "Q": "'",
            "FP": FORMULA_PREFIXES, "DT": datetime, "HEX": re.compile(r"[0-9a-f]{32}").fullmatch,
        }
        parts = []
        for index, column in enumerate(self.columns):
            self._namespace[f"G{index}"] = self._generic(column)
            self._namespace[f"K{index}"] = ("{" if index == 0 else ", ") + encode_basestring(column.name) + ": "
            expression = self._expression(column, index)
            parts.append(expression if fmt == "csv" else f"K{index}, {expression}")
        names = ", ".join(f"c{index}" for index in range(len(self.columns)))
        if fmt == "csv":
            body = f"[{', '.join(parts)}]"
        else:
            self._namespace["END"] = "}"
            body = f"''.join(({', '.join(parts)}, END))"
        source = f"def encode(row):\n    {names}, = row\n    return {body}\n"
        exec(compile(source, f"<rail_django export encoder {fmt}>", "exec"), self._namespace)
        self.encode: Callable[[Sequence[Any]], Any] = self._namespace["encode"]

    def _generic(self, column: Column) -> Callable[[Any], str]:
        """The reference output for one raw value: Django's value, then the formatting of the ORM path."""
        convert = column.convert
        if self.fmt == "csv":
            return lambda value: csv_cell(convert(value))
        typed = isinstance(column.field, _TYPED_FIELDS)

        def generic(value: Any) -> str:
            value = convert(value)
            if typed and value is not None:
                value = _record_value(value)
            return _json_text(value)

        return generic

    def _define(self, name: str, value: Any) -> str:
        self._namespace[name] = value
        return name

    def _expression(self, column: Column, index: int) -> str:
        """Python source for the output text of column ``c<index>``."""
        c, g, kind, csv_format = f"c{index}", f"G{index}", column.kind, self.fmt == "csv"
        quote = "" if csv_format else '"'
        if kind == "text" or (kind == "uuid" and column.uuid_as_text):
            # (PostgreSQL's uuid text is hexadecimal digits and hyphens: nothing to escape or neutralise.)
            if csv_format:
                fast = f"(Q + {c} if {c}.startswith(FP) else {c}) if {c}.__class__ is str else {g}({c})"
            else:
                fast = f"S({c}) if {c}.__class__ is str else {g}({c})"
        elif kind == "int":
            if csv_format:  # a negative number starts with "-": neutralised like any other cell
                fast = f"(str({c}) if {c} >= 0 else Q + str({c})) if {c}.__class__ is int else {g}({c})"
            else:
                fast = f"str({c}) if {c}.__class__ is int else {g}({c})"
        elif kind == "bool":
            fast = f"TRUE if {c} is True else FALSE if {c} is False else {g}({c})"
        elif kind == "uuid-hex":
            fast = (f"f'{quote}{{{c}[:8]}}-{{{c}[8:12]}}-{{{c}[12:16]}}-{{{c}[16:20]}}-{{{c}[20:]}}{quote}' "
                    f"if {c}.__class__ is str and HEX({c}) else {g}({c})")
        elif kind == "datetime":
            # ISO 8601 text never starts with a formula character nor needs a JSON escape.
            slow = self._define(f"D{index}", self._datetime_encoder(column, self._namespace[g], quote))
            suffix = column.naive_datetime_suffix()
            if suffix is None:
                return f"{slow}({c})"
            end = self._define(f"Z{index}", suffix + quote)
            start = f"{self._define(f'A{index}', quote)} + " if quote else ""
            fast = f"{start}{c}.isoformat() + {end} if {c}.__class__ is DT and {c}.tzinfo is None else {slow}({c})"
        elif kind == "json" and not csv_format:  # CSV sorts the keys: always decoded
            return f"{self._define(f'J{index}', self._json_encoder(column, self._namespace[g]))}({c})"
        else:
            return f"{g}({c})"
        if column.field.null:
            return f"({'EMPTY' if csv_format else 'NULL'} if {c} is None else {fast})"
        return f"({fast})"

    @staticmethod
    def _datetime_encoder(column: Column, generic: Callable[[Any], str], quote: str) -> Callable[[Any], str]:
        def encode(value: Any) -> str:
            text = None if value is None else column.datetime_text(value)
            return generic(value) if text is None else f"{quote}{text}{quote}"

        return encode

    @staticmethod
    def _json_encoder(column: Column, generic: Callable[[Any], str]) -> Callable[[Any], str]:
        canonical = _CANONICAL_JSON.fullmatch
        # SQLite and MariaDB (and PostgreSQL's json type) keep the text as written, repeated keys included.
        may_repeat = _never if column.json_unique_keys else _may_repeat_a_key

        def encode(value: Any) -> str:
            if value.__class__ is str and canonical(value) and not may_repeat(value):
                return value  # already what json.dumps(json.loads(value), ensure_ascii=False) gives
            return generic(value)

        return encode


class RawRows:
    """The rows of a ``values_list`` query as the driver returns them, a chunk at a time, with their columns."""

    def __init__(self, queryset: QuerySet, fields: list[str], chunk_size: int) -> None:
        self.alias = queryset.db
        self.connection = connections[self.alias]
        self.model = queryset.model
        self.ordered = queryset.order_by("timestamp", "pk")
        self.fields = fields
        self.chunk_size = chunk_size
        compiler = self.ordered.values_list(*fields).query.get_compiler(self.alias)
        try:
            compiler.as_sql()  # sets up the select list
        except EmptyResultSet:
            pass
        selected = [entry[0] for entry in compiler.select[: compiler.col_count]]
        found = compiler.get_converters(selected)
        by_name = {f.attname: f for f in self.model._meta.concrete_fields}
        self.columns = [
            Column(by_name[name], list(found.get(i, ((), None))[0]), expression, self.connection)
            for i, (name, expression) in enumerate(zip(fields, selected, strict=True))
        ]
        self._loaders: list[str] = []
        if self.connection.vendor == "postgresql":
            self._plan_postgresql_loaders()

    def _plan_postgresql_loaders(self) -> None:
        """Read uuid as text and timestamptz with psycopg's C loader, when only stock fields have those types.

        Django's own timestamptz loader is a Python subclass that costs ~2.5 us per value; psycopg's
        gives the same wall time and UTC offset when the session zone is Django's (checked per cursor).
        """
        from django.db.backends.postgresql.psycopg_any import is_psycopg3

        if not is_psycopg3:
            return
        db_types = {c.field.db_type(self.connection) for c in self.columns if c.kind == "generic"}
        db_types |= {f.db_type(self.connection) for f in self.model._meta.concrete_fields if f.attname not in self.fields}
        if "uuid" not in db_types:
            self._loaders.append("uuid")
            for column in self.columns:
                if column.kind == "uuid":
                    column.uuid_as_text = True
        if settings.USE_TZ and "timestamp with time zone" not in db_types:
            self._loaders.append("timestamptz")

    def _configure_cursor(self, cursor: Any) -> None:
        if not self._loaders:
            return
        from psycopg.types.datetime import TimestamptzLoader
        from psycopg.types.string import TextLoader

        raw = cursor.cursor
        if "uuid" in self._loaders:
            raw.adapters.register_loader("uuid", TextLoader)
        # psycopg's loader reads the session's TimeZone, which Django sets to its own zone on connect.
        session_zone = raw.connection.info.parameter_status("TimeZone")
        if "timestamptz" in self._loaders and session_zone == self.connection.timezone_name:
            raw.adapters.register_loader("timestamptz", TimestamptzLoader)

    def chunks(self) -> Iterator[list[Sequence[Any]]]:
        """Lists of at most ``chunk_size`` raw rows, oldest first."""
        if self.connection.vendor == "mysql":
            yield from self._keyset_chunks()
            return
        compiler = self.ordered.values_list(*self.fields).query.get_compiler(self.alias)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            return
        extra = compiler.has_extra_select
        server_side = (self.connection.features.can_use_chunked_reads
                       and not self.connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"))
        # Inside a transaction PostgreSQL streams a server-side cursor; outside one (autocommit) Django
        # declares it WITH HOLD, which makes the server materialise the whole result first.
        atomic = transaction.atomic(using=self.alias) if self.connection.vendor == "postgresql" else nullcontext()
        with atomic:
            cursor = self.connection.chunked_cursor() if server_side else self.connection.cursor()
            with cursor:
                self._configure_cursor(cursor)
                cursor.execute(sql, params)
                while rows := cursor.fetchmany(self.chunk_size):
                    yield [row[: compiler.col_count] for row in rows] if extra else rows

    def _keyset_chunks(self) -> Iterator[list[Sequence[Any]]]:
        # MySQL drivers load a whole result into memory: walk the (timestamp, pk) order in pages instead.
        timestamp = self.columns[self.fields.index("timestamp")]
        pk = self.columns[self.fields.index(self.model._meta.pk.attname)]
        last: tuple[Any, Any] | None = None
        while True:
            page = self.ordered
            if last is not None:
                page = page.filter(Q(timestamp__gt=last[0]) | Q(timestamp=last[0], pk__gt=last[1]))
            compiler = page.values_list(*self.fields)[: self.chunk_size].query.get_compiler(self.alias)
            try:
                sql, params = compiler.as_sql()
            except EmptyResultSet:
                return
            with self.connection.cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            if compiler.has_extra_select:
                rows = [row[: compiler.col_count] for row in rows]
            if not rows:
                return
            yield list(rows)
            last_row = rows[-1]
            last = (timestamp.convert(last_row[self.fields.index("timestamp")]),
                    pk.convert(last_row[self.fields.index(pk.name)]))


class Writer:
    """Writes rows in one format to a text stream, a chunk at a time.

    :meth:`add` takes a row dict of Django values (the OCSF path); :meth:`add_raw` takes a chunk of raw
    rows and the :class:`RowEncoder` of their columns (JSON, JSON lines, CSV).
    """

    def __init__(self, fmt: str, model: type[Any], fields: list[str], out: TextIO) -> None:
        self.fmt, self.fields, self.out = fmt, fields, out
        self._record = record_maker(model, fields)
        self.count = 0
        self._pending: list[str] = []
        self._buffer = io.StringIO()
        # RFC 4180 line ends: a cell holding a lone "\r" or "\n" is then quoted too.
        self._csv = csv.writer(self._buffer, lineterminator="\r\n")

    def begin(self) -> None:
        if self.fmt == "json":
            self.out.write("[")
        elif self.fmt == "csv":
            self._csv.writerow(self.fields)
            self._drain_csv()

    def add(self, row: dict[str, Any]) -> None:
        if self.fmt == "csv":
            self._csv.writerow([csv_cell(row[name]) for name in self.fields])
        elif self.fmt == "json":
            self._pending.append(("\n" if self.count == 0 else ",\n") + self._json_line(row))
        else:
            self._pending.append(self._json_line(row) + "\n")
        self.count += 1

    def add_raw(self, rows: Sequence[Sequence[Any]], encoder: RowEncoder) -> None:
        """Encode a chunk of raw rows (see :class:`RawRows`) and queue it for :meth:`flush`."""
        if not rows:
            return
        if self.fmt == "csv":
            self._csv.writerows(map(encoder.encode, rows))
        elif self.fmt == "json":
            self._pending.append(("\n" if self.count == 0 else ",\n") + ",\n".join(map(encoder.encode, rows)))
        else:
            self._pending.append("\n".join(map(encoder.encode, rows)) + "\n")
        self.count += len(rows)

    def _json_line(self, row: dict[str, Any]) -> str:
        # OCSF maps the raw row (it needs the datetime); the others write the row itself.
        document = to_ocsf(row) if self.fmt == "ocsf" else self._record(row)
        return _json_text(document)

    def flush(self) -> None:
        if self.fmt == "csv":
            self._drain_csv()
        elif self._pending:
            self.out.write("".join(self._pending))
            self._pending.clear()

    def end(self) -> None:
        self.flush()
        if self.fmt == "json":
            self.out.write("\n]\n" if self.count else "]\n")

    def _drain_csv(self) -> None:
        self.out.write(self._buffer.getvalue())
        self._buffer.seek(0)
        self._buffer.truncate()


@contextmanager
def open_output(path: str | None, stdout: TextIO) -> Iterator[TextIO]:
    """``stdout`` for ``None``/``-``; else a temporary file beside ``path``, moved into place on success."""
    if path in (None, "-"):
        yield stdout
        return
    target = Path(path)
    if target.is_dir():
        raise CommandError(f"--output {path!r} is a directory")
    temporary = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        handle = open(temporary, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise CommandError(f"cannot write --output {path!r}: {exc.strerror or exc}") from None
    try:
        with handle:
            yield handle
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def run_export(
    *,
    fmt: str,
    output: str | None,
    stdout: TextIO,
    progress: Callable[[int], None] | None = None,
    days: int | None = None,
    since: str | None = None,
    until: str | None = None,
    event_types: list[str] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> int:
    """Write the matching events to ``output`` (or ``stdout``); records a ``data.export`` event; returns the count."""
    if fmt not in FORMATS:
        raise CommandError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    queryset = filtered_events(days, since, until, event_types)
    fields = export_fields(queryset.model)
    with open_output(output, stdout) as out:
        writer = Writer(fmt, queryset.model, fields, out)
        writer.begin()
        if fmt == "ocsf":
            for row in stream_rows(queryset, fields, chunk_size):
                writer.add(row)
                if writer.count % chunk_size == 0:
                    writer.flush()
                    if progress:
                        progress(writer.count)
        else:
            raw = RawRows(queryset, fields, chunk_size)
            encoder = RowEncoder(fmt, raw.columns)
            # closing(): a failed write ends the read (and its transaction) at once, not when collected.
            with closing(raw.chunks()) as chunks:
                for rows in chunks:
                    writer.add_raw(rows, encoder)
                    writer.flush()
                    if progress and writer.count % chunk_size == 0:
                        progress(writer.count)
        writer.end()
    security.emit(
        EventType.DATA_EXPORT,
        action=f"Exported {writer.count} audit events as {fmt}",
        resource_type="audit_event",
        context={
            "format": fmt,
            "rows": writer.count,
            "output": "stdout" if output in (None, "-") else str(Path(output).resolve()),
            "filters": {"days": days, "since": since, "until": until, "event_types": event_types or []},
            "invoked_by": invoked_by(),
        },
    )
    return writer.count
