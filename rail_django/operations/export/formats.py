"""Each export format: one row of JSON-ready values (:func:`.query.row_chunks`) as output text.

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
from operator import itemgetter
from typing import Any, TextIO

import orjson
from django.db import models

from rail_django.operations.export.query import FLAT_FIELDS, INTEGER_FIELDS, TEXT_FIELDS, JSONText
from rail_django.operations.ocsf import to_ocsf

FORMATS = ("json", "jsonl", "csv", "ocsf")
#: Cell prefixes a spreadsheet would run as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

#: ``json.dumps(value, ensure_ascii=False, default=str)`` (and with sorted keys), built once.
json_text = json.JSONEncoder(ensure_ascii=False, default=str).encode
_sorted_json_text = json.JSONEncoder(ensure_ascii=False, default=str, sort_keys=True).encode


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


def _text_cells(values: Sequence[Any]) -> list[Any]:
    # csv_cell of text or None, inline (None stays None: the csv module writes it as an empty cell).
    return [value if value is None or not value.startswith(FORMULA_PREFIXES) else "'" + value for value in values]


def _integer_cells(values: Sequence[Any]) -> list[Any]:
    return [value if value is None or value >= 0 else "'" + str(value) for value in values]


def _ascii_digit_first_cells(values: Sequence[Any]) -> Sequence[Any]:
    # ISO 8601 timestamps and UUID texts start with a digit or a hex letter: never a formula.
    return values


def _any_cells(values: Sequence[Any]) -> list[str]:
    return [csv_cell(value) for value in values]


def cell_maker(model: type[Any], fields: list[str]) -> Callable[[Sequence[Sequence[Any]]], list[tuple]]:
    """A function turning a chunk of JSON-ready rows into rows of CSV cells (:func:`csv_cell` of each
    value), column by column, with the common column types checked inline."""
    by_name = {f.attname: f for f in model._meta.concrete_fields}
    makers = []
    for name in fields:
        kind = type(by_name[name])
        if kind in TEXT_FIELDS:
            makers.append(_text_cells)
        elif kind in INTEGER_FIELDS:
            makers.append(_integer_cells)
        elif kind in (models.UUIDField, models.DateTimeField):
            makers.append(_ascii_digit_first_cells)
        else:
            makers.append(_any_cells)

    def cells(rows: Sequence[Sequence[Any]]) -> list[tuple]:
        columns = zip(*rows, strict=True)
        return list(zip(*[make(column) for make, column in zip(makers, columns, strict=True)], strict=True))

    return cells


def _json_bytes(value: Any) -> bytes:
    return value.encode() if value.__class__ is JSONText else json_text(value).encode()


def _values(row: Sequence[Any]) -> list[Any]:
    return [value.value() if value.__class__ is JSONText else value for value in row]


def object_encoder(model: type[Any], fields: list[str]) -> Callable[[Sequence[Any]], bytes]:
    """A function giving ``json_text(dict(zip(fields, row))).encode()`` for a row of JSON-ready values.

    Text, integers, booleans and None (the columns of :data:`.query.FLAT_FIELDS`) are encoded by
    ``orjson.dumps``, which writes them exactly as the json module does (checked for every code point
    in the tests) about ten times faster; the other columns (JSON structures, floats, custom fields) by
    the json module. The object is a fixed template filled with the values' texts: orjson writes no
    spaces, so it cannot write the object itself. orjson refuses (``TypeError``) a lone surrogate and an
    integer beyond 64 bits: the caller then uses the json module for the chunk.
    """
    by_name = {f.attname: f for f in model._meta.concrete_fields}
    flat = [i for i, name in enumerate(fields) if type(by_name[name]) in FLAT_FIELDS]
    others = [(i, _json_bytes) for i in range(len(fields)) if i not in flat]
    # A "%" in a field name is doubled: only the slots are formatted.
    template = b"{" + b", ".join(json_text(name).encode().replace(b"%", b"%%") + b": %b" for name in fields) + b"}"
    dumps = orjson.dumps
    pick = itemgetter(*flat) if len(flat) > 1 else (lambda row: (row[flat[0]],) if flat else ())

    def encode(row: Sequence[Any]) -> bytes:
        texts = list(map(dumps, pick(row)))
        for position, encode_other in others:  # in increasing position: each lands in its slot
            texts.insert(position, encode_other(row[position]))
        return template % tuple(texts)

    return encode


class Writer:
    """Writes chunks of rows in one format to a text stream."""

    def __init__(self, fmt: str, model: type[Any], fields: list[str], out: TextIO) -> None:
        self.fmt, self.fields, self.out = fmt, fields, out
        self.count = 0
        #: JSON and JSON lines copy canonical stored JSON text (``row_chunks(..., stored_json=True)``).
        self.copies_stored_json = fmt in ("json", "jsonl")
        self._object = object_encoder(model, fields)
        self._cells = cell_maker(model, fields)
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
            self._csv.writerows(self._cells(rows))
            self._drain_csv()
        elif self.fmt == "ocsf":
            self.out.write("".join(json_text(to_ocsf(dict(zip(self.fields, row, strict=True)))) + "\n" for row in rows))
        else:
            if self.fmt == "jsonl":
                self.out.write(self._objects(rows, "\n") + "\n")
            else:
                self.out.write(("\n" if self.count == 0 else ",\n") + self._objects(rows, ",\n"))
        self.count += len(rows)

    def _objects(self, rows: Sequence[Sequence[Any]], separator: str) -> str:
        """The JSON object text of each row, joined by ``separator``."""
        encode = self._object
        try:
            return separator.encode().join([encode(row) for row in rows]).decode()  # one decoding per chunk
        except (TypeError, UnicodeEncodeError):
            # orjson refused a value (see object_encoder), or a lone surrogate has no UTF-8 form: the json
            # module writes the chunk as text, and the output decides (a StringIO takes it, a file refuses).
            fields = self.fields
            return separator.join([json_text(dict(zip(fields, _values(row), strict=True))) for row in rows])

    def end(self) -> None:
        if self.fmt == "json":
            self.out.write("\n]\n" if self.count else "]\n")

    def _drain_csv(self) -> None:
        self.out.write(self._buffer.getvalue())
        self._buffer.seek(0)
        self._buffer.truncate()
