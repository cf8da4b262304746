"""``audit_management export``: stream stored events as JSON, JSON lines, CSV or OCSF.

Rows are read with ``QuerySet.values_list(...).iterator(chunk_size=...)``,
timestamps, UUIDs and JSON as their stored text (:mod:`.query`), encoded per format (:mod:`.formats`) and written a chunk at a
time to standard output or to a file replaced atomically, mode 0600
(:mod:`.output`), so memory stays flat at any table size. Each export records
one ``data.export`` event.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TextIO

from django.core.management.base import CommandError

from rail_django.operations.common import invoked_by
from rail_django.operations.export.formats import FORMATS, Writer, csv_cell
from rail_django.operations.export.output import FILE_MODE, open_output
from rail_django.operations.export.query import (
    DEFAULT_CHUNK_SIZE,
    export_columns,
    export_fields,
    filtered_events,
    row_chunks,
)
from rail_django.security import EventType, security

__all__ = [
    "DEFAULT_CHUNK_SIZE", "FILE_MODE", "FORMATS", "Writer", "csv_cell", "export_fields", "filtered_events",
    "export_columns", "open_output", "row_chunks", "run_export",
]


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
        # closing(): a failed write ends the read (and its transaction) at once, not when collected.
        chunks = row_chunks(queryset, fields, chunk_size, stored_json=writer.copies_stored_json)
        with closing(chunks):
            for rows in chunks:
                writer.write(rows)
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
