"""Which rows an export covers, and reading them oldest first a chunk at a time with flat memory.

Rows come from ``QuerySet.values_list()`` with the columns Django would convert value by value
(timestamps, UUIDs, booleans, JSON) selected as their stored text (``Cast``): the database's own
text of a UTC timestamp or a UUID becomes its ISO 8601 or hyphenated form with a few string
operations, instead of a ``datetime`` or ``UUID`` built per value and formatted again. Each value
is checked to be in the form expected; any other goes through the conversion Django applies, so
the rows are the JSON-ready values of what ``values_list()`` of the fields gives.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import closing, nullcontext
from dataclasses import dataclass
from datetime import timezone
from itertools import islice, repeat
from operator import itemgetter
from typing import Any
from uuid import UUID

import orjson
from django.conf import settings
from django.db import connections, models, transaction
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils.dateparse import parse_datetime

from rail_django.operations.common import stored_events, time_range

DEFAULT_CHUNK_SIZE = 2000

#: Field classes whose values every supported driver returns as Django gives them (no converter).
TEXT_FIELDS = (
    models.CharField, models.TextField, models.GenericIPAddressField, models.EmailField, models.SlugField,
    models.URLField,
)
INTEGER_FIELDS = (
    models.AutoField, models.BigAutoField, models.SmallAutoField, models.IntegerField, models.BigIntegerField,
    models.SmallIntegerField, models.PositiveIntegerField, models.PositiveBigIntegerField,
    models.PositiveSmallIntegerField,
)
_AS_READ = (*TEXT_FIELDS, *INTEGER_FIELDS)
_TEMPORAL_FIELDS = (models.DateTimeField, models.DateField, models.TimeField)
#: Field classes whose JSON-ready values (:func:`row_chunks`) are only text, integers, booleans and None.
FLAT_FIELDS = (*_AS_READ, models.BooleanField, models.UUIDField, models.DateTimeField)
_VENDORS = ("sqlite", "postgresql", "mysql")


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


def json_value(text: str | None) -> Any:
    """What ``JSONField.from_db_value`` gives for stored JSON text: ``json.loads(text)``, or the text itself
    when it is not JSON.

    orjson decodes the same text to the same value 3-4 times faster, except where it refuses (NaN,
    Infinity, lone surrogates: the json module decides) and for integers beyond 64 bits, which it turns
    into floats; those print with an exponent ("e+"), so a text whose value prints one is decoded again
    by the json module (a string holding "e+" only costs that second decoding).
    """
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    else:
        if b"e+" not in orjson.dumps(value):
            return value
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# -- stored JSON text that is already what json.dumps writes ---------------------------------------

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
# container). Validity is checked apart (orjson), so this lexical check need not match brackets; it
# rejects any other spacing, escape or number form.
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
    # (map over pieces and count quotes: the last piece follows the last key; C-level loops.)
    return len(set(map(_third, map(str.rpartition, pieces, repeat('"', count))))) != count


def is_canonical_json(text: str, *, unique_keys: bool = False) -> bool:
    """Whether ``json.dumps(json.loads(text), ensure_ascii=False)`` is ``text`` itself.

    ``unique_keys``: the database keeps one value per key (jsonb); otherwise a text that may repeat a
    key is refused. False only costs speed: the text is then decoded and re-encoded.
    """
    if _CANONICAL_JSON.fullmatch(text) is None or (not unique_keys and _may_repeat_a_key(text)):
        return False
    try:
        orjson.loads(text)  # valid JSON (the pattern is lexical only)
    except orjson.JSONDecodeError:
        return False
    return True


class JSONText(str):
    """Stored JSON text that is exactly ``json.dumps(value, ensure_ascii=False)`` of its value."""

    __slots__ = ()

    def value(self) -> Any:
        return orjson.loads(str(self))  # (orjson takes exact str only)


def json_text_or_value(unique_keys: bool) -> Callable[[str], Any]:
    """For the JSON formats: :class:`JSONText` for canonical stored text (copied as it is), else the value."""

    def read(text: str) -> Any:
        return JSONText(text) if is_canonical_json(text, unique_keys=unique_keys) else json_value(text)

    return read


# A UTC timestamp as text: "YYYY-MM-DD HH:MM:SS[.f...]" as Django stores it on SQLite (and MySQL's
# CAST gives), with "+00" as PostgreSQL writes a timestamptz in a UTC session (its fraction has no
# trailing zeros).
_UTC_STAMP = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})[ T]([0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,6}))?(?:\+00)?")
_HEX32 = re.compile(r"[0-9a-f]{32}")


def utc_timestamp_text(text: str) -> str:
    """``isoformat()`` of the aware UTC datetime Django reads from this stored timestamp text."""
    match = _UTC_STAMP.fullmatch(text)
    if match is None:  # another form (an offset, "Z"): Django's parsing, naive meaning UTC
        moment = parse_datetime(text)
        if moment is None:
            raise ValueError(f"unreadable stored timestamp {text!r}")
        return (moment if moment.utcoffset() is not None else moment.replace(tzinfo=timezone.utc)).isoformat()
    day, clock, fraction = match.groups()
    if fraction is None or fraction.count("0") == len(fraction):  # isoformat() omits a zero fraction
        return f"{day}T{clock}+00:00"
    return f"{day}T{clock}.{fraction:0<6}+00:00"


def uuid_text(text: str) -> str:
    """``str(UUID(text))``, with the 32 lower-case hex digits Django stores (SQLite, MySQL) sliced directly."""
    if _HEX32.fullmatch(text) is None:
        return str(UUID(text))
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_BOOLEANS = {"0": False, "1": True}


def boolean_value(text: str) -> Any:
    """MySQL: Django's boolean of a stored 0/1 read as text (another number stays that number, as in Django)."""
    value = _BOOLEANS.get(text)
    return int(text) if value is None else value


def _isoformat(value: Any) -> Any:
    return value.isoformat()


@dataclass(frozen=True)
class Column:
    """One exported column: what ``values_list()`` selects, and the function making its value JSON-ready."""

    name: str
    selected: Any
    convert: Callable[[Any], Any] | None


def _timestamps_are_utc_text(connection: Any) -> bool:
    """Whether a timestamp cast to text is a UTC time in the forms :func:`utc_timestamp_text` expects."""
    if not settings.USE_TZ or connection.settings_dict.get("TIME_ZONE") not in (None, "UTC"):
        return False
    if connection.vendor != "postgresql":
        return True  # stored as naive UTC text (SQLite) or a naive UTC DATETIME (MySQL)
    # (psycopg itself reads timestamps in the ISO DateStyle only.)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('TimeZone')")
        (zone,) = cursor.fetchone()
    return zone in ("UTC", "Etc/UTC")


def export_columns(queryset: QuerySet, fields: list[str], *, stored_json: bool = False) -> list[Column]:
    """How each of ``fields`` is read: its text where that is cheaper to format, else as Django reads it.

    ``stored_json``: a stock ``JSONField``'s value is its :class:`JSONText` where that is canonical.
    """
    connection = connections[queryset.db]
    vendor = connection.vendor
    by_name = {f.attname: f for f in queryset.model._meta.concrete_fields}
    utc_text = vendor in _VENDORS and _timestamps_are_utc_text(connection)
    columns = []
    for name in fields:
        field = by_name[name]
        kind = type(field)
        if vendor not in _VENDORS:
            column = Column(name, name, _isoformat if isinstance(field, _TEMPORAL_FIELDS) else
                            str if isinstance(field, models.UUIDField) else None)
        elif kind in _AS_READ:
            column = Column(name, name, None)
        elif kind is models.BooleanField:
            # PostgreSQL's driver gives a bool; SQLite and MySQL store 0/1, read as text: a Cast to an
            # integer would bring back a per-value converter (int()).
            if vendor == "postgresql":
                column = Column(name, name, None)
            else:  # SQLite: the driver's "bool" converter Django registers is b"1".__eq__ of the stored text
                column = Column(name, Cast(name, TextField()), "1".__eq__ if vendor == "sqlite" else boolean_value)
        elif kind is models.UUIDField:
            # PostgreSQL's uuid text is already the hyphenated lower-case form.
            column = Column(name, Cast(name, TextField()), None if vendor == "postgresql" else uuid_text)
        elif kind is models.DateTimeField and utc_text:
            column = Column(name, Cast(name, TextField()), utc_timestamp_text)
        elif kind is models.JSONField and field.decoder is None:
            # jsonb keeps one value per key; SQLite and MariaDB keep the text as written.
            read = json_text_or_value(vendor == "postgresql") if stored_json else json_value
            column = Column(name, Cast(name, TextField()), read)
        elif isinstance(field, _TEMPORAL_FIELDS):
            column = Column(name, name, _isoformat)
        elif isinstance(field, models.UUIDField):
            column = Column(name, name, str)
        else:
            column = Column(name, name, None)
        columns.append(column)
    return columns


def row_chunks(
    queryset: QuerySet, fields: list[str], chunk_size: int = DEFAULT_CHUNK_SIZE, *, stored_json: bool = False,
) -> Iterator[list[Any]]:
    """Lists of at most ``chunk_size`` rows, oldest first: per row, the JSON-ready value of each of
    ``fields`` (what ``values_list()`` gives, with timestamps, dates and times as ISO 8601 and UUIDs as
    text; with ``stored_json``, canonical JSON as :class:`JSONText`).

    ``QuerySet.iterator(chunk_size=...)`` streams: a server-side cursor on
    PostgreSQL (inside a transaction: outside one Django declares it
    ``WITH HOLD``, which makes the server materialise the whole result
    first), ``fetchmany`` on SQLite. MySQL/MariaDB drivers load a whole
    result into memory, so there the ``(timestamp, pk)`` order is walked in
    keyset-paginated pages instead.
    """
    ordered = queryset.order_by("timestamp", "pk")
    columns = export_columns(queryset, fields, stored_json=stored_json)
    selected = [column.selected for column in columns]
    conversions = [(position, column.convert) for position, column in enumerate(columns) if column.convert]
    if connections[queryset.db].vendor == "mysql":
        chunks = _keyset_pages(ordered, selected, chunk_size)
    else:
        chunks = _streamed(ordered, selected, chunk_size)
    with closing(chunks):
        for chunk in chunks:
            yield _converted(chunk, conversions)


def _converted(chunk: list[tuple], conversions: list[tuple[int, Callable[[Any], Any]]]) -> list[tuple]:
    if not conversions or not chunk:
        return chunk
    # Column by column: one comprehension per converted column costs less than a loop per row.
    columns = list(zip(*chunk, strict=True))
    for position, convert in conversions:
        columns[position] = [None if value is None else convert(value) for value in columns[position]]
    return list(zip(*columns, strict=True))


def _streamed(ordered: QuerySet, selected: list[Any], chunk_size: int) -> Iterator[list[tuple]]:
    vendor = connections[ordered.db].vendor
    atomic = transaction.atomic(using=ordered.db) if vendor == "postgresql" else nullcontext()
    with atomic:
        rows = ordered.values_list(*selected).iterator(chunk_size=chunk_size)
        while chunk := list(islice(rows, chunk_size)):
            yield chunk


def _keyset_pages(ordered: QuerySet, selected: list[Any], chunk_size: int) -> Iterator[list[tuple]]:
    # The page key is read as Django values (two more columns), not as the text the export formats.
    key = ("timestamp", ordered.model._meta.pk.attname)
    last: tuple | None = None
    while True:
        page = ordered
        if last is not None:
            stamp, pk = last
            page = ordered.filter(Q(timestamp__gt=stamp) | Q(timestamp=stamp, pk__gt=pk))
        rows = list(page.values_list(*selected, *key)[:chunk_size])
        if not rows:
            return
        last = rows[-1][-2:]
        yield [row[:-2] for row in rows]
