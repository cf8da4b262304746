"""Which rows an export covers, and reading them oldest first a chunk at a time with flat memory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from itertools import islice
from typing import Any

from django.db import connections, transaction
from django.db.models import Q, QuerySet

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


def row_chunks(queryset: QuerySet, fields: list[str], chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[list[tuple]]:
    """Lists of at most ``chunk_size`` rows (tuples of ``values_list(*fields)``), oldest first.

    ``QuerySet.iterator(chunk_size=...)`` streams: a server-side cursor on
    PostgreSQL (inside a transaction: outside one Django declares it
    ``WITH HOLD``, which makes the server materialise the whole result
    first), ``fetchmany`` on SQLite. MySQL/MariaDB drivers load a whole
    result into memory, so there the ``(timestamp, pk)`` order is walked in
    keyset-paginated pages instead.
    """
    ordered = queryset.order_by("timestamp", "pk")
    vendor = connections[queryset.db].vendor
    if vendor == "mysql":
        yield from _keyset_pages(ordered, fields, chunk_size)
        return
    atomic = transaction.atomic(using=queryset.db) if vendor == "postgresql" else nullcontext()
    with atomic:
        rows = ordered.values_list(*fields).iterator(chunk_size=chunk_size)
        while chunk := list(islice(rows, chunk_size)):
            yield chunk


def _keyset_pages(ordered: QuerySet, fields: list[str], chunk_size: int) -> Iterator[list[tuple]]:
    timestamp_at = fields.index("timestamp")
    pk_at = fields.index(ordered.model._meta.pk.attname)
    last: tuple | None = None
    while True:
        page = ordered
        if last is not None:
            stamp, pk = last[timestamp_at], last[pk_at]
            page = ordered.filter(Q(timestamp__gt=stamp) | Q(timestamp=stamp, pk__gt=pk))
        rows = list(page.values_list(*fields)[:chunk_size])
        if not rows:
            return
        yield rows
        last = rows[-1]
