"""``audit_management export``: stream stored events as JSON, JSON lines, CSV or OCSF.

Rows are read with ``QuerySet.iterator(chunk_size=...)`` (a server-side
cursor on PostgreSQL, ``fetchmany`` on SQLite) and, on MySQL/MariaDB, whose
drivers buffer a whole result, in keyset-paginated chunks; each chunk is
written out before the next is read, so memory stays flat at any table size.
A file is written beside its target and moved into place at the end, so a
failed export never leaves a half-written file.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from uuid import UUID

from django.core.management.base import CommandError
from django.db import connections, models
from django.db.models import Q, QuerySet

from rail_django.management.audit.common import invoked_by, stored_events, time_range
from rail_django.management.audit.ocsf import to_ocsf
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
    """Rows as dicts, oldest first, read ``chunk_size`` at a time."""
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


def record_maker(model: type[Any], fields: list[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A function turning a row into JSON-ready values (ISO 8601 timestamps with microseconds, UUIDs as text).

    Only the columns whose type needs it are converted, once per row.
    """
    by_name = {f.attname: f for f in model._meta.concrete_fields}
    typed = [
        name for name in fields
        if isinstance(by_name[name], (models.DateTimeField, models.DateField, models.TimeField, models.UUIDField))
    ]

    def make(row: dict[str, Any]) -> dict[str, Any]:
        for name in typed:
            value = row[name]
            if value is not None:
                row[name] = str(value) if isinstance(value, UUID) else value.isoformat()
        return row

    return make


def csv_cell(value: Any) -> str:
    """One CSV cell: JSON for structures, ``true``/``false``, empty for None, formulas neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    else:
        text = str(_plain(value))
    # A leading apostrophe makes spreadsheets show the text instead of evaluating it.
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


class Writer:
    """Writes rows in one format to a text stream, a chunk at a time."""

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

    def _json_line(self, row: dict[str, Any]) -> str:
        # OCSF maps the raw row (it needs the datetime); the others write the row itself.
        document = to_ocsf(row) if self.fmt == "ocsf" else self._record(row)
        return json.dumps(document, ensure_ascii=False, default=str)

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
        for row in stream_rows(queryset, fields, chunk_size):
            writer.add(row)
            if writer.count % chunk_size == 0:
                writer.flush()
                if progress:
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
