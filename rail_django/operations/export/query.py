"""Which rows an export covers, and reading them oldest first a chunk at a time with flat memory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing, nullcontext
from itertools import islice
from typing import Any

import orjson
from django.db import connections, models, transaction
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast

from rail_django.operations.common import stored_events, time_range

DEFAULT_CHUNK_SIZE = 2000


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


def _selected(model: type[Any], fields: list[str]) -> tuple[list[Any], list[int]]:
    """``values_list()`` arguments, and the positions of JSON columns read as their text (decoded by
    :func:`json_value`): a stock ``JSONField`` (no custom decoder); any other column as Django reads it."""
    by_name = {f.attname: f for f in model._meta.concrete_fields}
    selected: list[Any] = []
    as_text: list[int] = []
    for position, name in enumerate(fields):
        field = by_name[name]
        if type(field) is models.JSONField and field.decoder is None:
            selected.append(Cast(name, TextField()))
            as_text.append(position)
        else:
            selected.append(name)
    return selected, as_text


def row_chunks(queryset: QuerySet, fields: list[str], chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[list[Any]]:
    """Lists of at most ``chunk_size`` rows (sequences of the Django values of ``fields``), oldest first.

    ``QuerySet.iterator(chunk_size=...)`` streams: a server-side cursor on
    PostgreSQL (inside a transaction: outside one Django declares it
    ``WITH HOLD``, which makes the server materialise the whole result
    first), ``fetchmany`` on SQLite. MySQL/MariaDB drivers load a whole
    result into memory, so there the ``(timestamp, pk)`` order is walked in
    keyset-paginated pages instead.
    """
    ordered = queryset.order_by("timestamp", "pk")
    selected, as_text = _selected(queryset.model, fields)
    vendor = connections[queryset.db].vendor
    if vendor == "mysql":
        chunks = _keyset_pages(ordered, selected, fields, chunk_size)
    else:
        chunks = _streamed(ordered, selected, chunk_size, vendor)
    with closing(chunks):
        for chunk in chunks:
            yield _decoded(chunk, as_text) if as_text else chunk


def _decoded(chunk: list[tuple], as_text: list[int]) -> list[list[Any]]:
    rows = []
    for row in chunk:
        row = list(row)
        for position in as_text:
            row[position] = json_value(row[position])
        rows.append(row)
    return rows


def _streamed(ordered: QuerySet, selected: list[Any], chunk_size: int, vendor: str) -> Iterator[list[tuple]]:
    atomic = transaction.atomic(using=ordered.db) if vendor == "postgresql" else nullcontext()
    with atomic:
        rows = ordered.values_list(*selected).iterator(chunk_size=chunk_size)
        while chunk := list(islice(rows, chunk_size)):
            yield chunk


def _keyset_pages(ordered: QuerySet, selected: list[Any], fields: list[str], chunk_size: int) -> Iterator[list[tuple]]:
    timestamp_at = fields.index("timestamp")
    pk_at = fields.index(ordered.model._meta.pk.attname)
    last: tuple | None = None
    while True:
        page = ordered
        if last is not None:
            stamp, pk = last[timestamp_at], last[pk_at]
            page = ordered.filter(Q(timestamp__gt=stamp) | Q(timestamp=stamp, pk__gt=pk))
        rows = list(page.values_list(*selected)[:chunk_size])
        if not rows:
            return
        yield rows
        last = rows[-1]
