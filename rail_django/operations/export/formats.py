"""Each export format: one row of Django values (``values_list()``) as output text.

- ``json``/``jsonl``: one object per row, ``json.dumps(record, ensure_ascii=False, default=str)``
  with timestamps, dates and times as ISO 8601 and UUIDs as text;
- ``csv``: ``true``/``false``, empty for NULL, structures as sorted-key JSON, and a ``'`` before a
  cell a spreadsheet would run as a formula;
- ``ocsf``: :func:`rail_django.operations.ocsf.to_ocsf` of the row, one object per line.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from typing import Any, TextIO
from uuid import UUID

from django.db import models

from rail_django.operations.ocsf import to_ocsf

FORMATS = ("json", "jsonl", "csv", "ocsf")
#: Cell prefixes a spreadsheet would run as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

#: ``json.dumps(value, ensure_ascii=False, default=str)`` (and with sorted keys), built once.
json_text = json.JSONEncoder(ensure_ascii=False, default=str).encode
_sorted_json_text = json.JSONEncoder(ensure_ascii=False, default=str, sort_keys=True).encode

_TEMPORAL_FIELDS = (models.DateTimeField, models.DateField, models.TimeField)


def csv_cell(value: Any) -> str:
    """One CSV cell: JSON for structures, ``true``/``false``, empty for None, formulas neutralised."""
    if value.__class__ is str:  # most cells
        return "'" + value if value.startswith(FORMULA_PREFIXES) else value
    if value is None:
        return ""
    if value.__class__ is bool:
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        text = _sorted_json_text(value)
    elif isinstance(value, (datetime, date, time)):
        text = value.isoformat()
    else:
        text = str(value)
    # A leading apostrophe makes spreadsheets show the text instead of evaluating it.
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def record_maker(model: type[Any], fields: list[str]) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """A function turning a row into its JSON-ready record (ISO 8601 timestamps, UUIDs as text).

    Only the columns whose field type needs it are converted.
    """
    by_name = {f.attname: f for f in model._meta.concrete_fields}
    temporal = [n for n in fields if isinstance(by_name[n], _TEMPORAL_FIELDS)]
    uuids = [n for n in fields if isinstance(by_name[n], models.UUIDField)]

    def make(row: Sequence[Any]) -> dict[str, Any]:
        record = dict(zip(fields, row, strict=True))
        for name in temporal:
            value = record[name]
            if value is not None:
                record[name] = value.isoformat()
        for name in uuids:
            value = record[name]
            if value.__class__ is UUID:
                record[name] = str(value)
        return record

    return make


class Writer:
    """Writes chunks of rows in one format to a text stream."""

    def __init__(self, fmt: str, model: type[Any], fields: list[str], out: TextIO) -> None:
        self.fmt, self.fields, self.out = fmt, fields, out
        self.count = 0
        self._record = record_maker(model, fields)
        self._buffer = io.StringIO()
        # RFC 4180 line ends: a cell holding a lone "\r" or "\n" is then quoted too.
        self._csv = csv.writer(self._buffer, lineterminator="\r\n")

    def begin(self) -> None:
        if self.fmt == "json":
            self.out.write("[")
        elif self.fmt == "csv":
            self._csv.writerow(self.fields)
            self._drain_csv()

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        """Encode and write one chunk of rows."""
        if not rows:
            return
        if self.fmt == "csv":
            self._csv.writerows([csv_cell(value) for value in row] for row in rows)
            self._drain_csv()
        elif self.fmt == "ocsf":
            self.out.write("".join(json_text(to_ocsf(dict(zip(self.fields, row, strict=True)))) + "\n" for row in rows))
        else:
            record = self._record
            lines = [json_text(record(row)) for row in rows]
            if self.fmt == "jsonl":
                self.out.write("\n".join(lines) + "\n")
            else:
                self.out.write(("\n" if self.count == 0 else ",\n") + ",\n".join(lines))
        self.count += len(rows)

    def end(self) -> None:
        if self.fmt == "json":
            self.out.write("\n]\n" if self.count else "]\n")

    def _drain_csv(self) -> None:
        self.out.write(self._buffer.getvalue())
        self._buffer.seek(0)
        self._buffer.truncate()
