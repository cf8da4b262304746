"""Is each sealed row stored in the one form its writer gives it?

A row's hash covers the values Python reads back. Where the database keeps a
value as text it does not normalise, the same value can be stored in several
forms that SQL reads differently, and the hash cannot tell them apart:

- a timestamp rewritten with another UTC offset (SQLite: ``2026-05-01
  11:59:00-23:59`` is the same instant, but falls outside every ``WHERE
  timestamp BETWEEN`` window);
- JSON with a duplicate key in front (SQLite, MariaDB: SQL's ``JSON_EXTRACT``
  reads the first ``"outcome"``, Python the last);
- a boolean stored as 2, a UUID with dashes.

This module reads the stored text of those columns through a plain cursor
(``CAST(column AS TEXT)``) and compares it with what rail-django's writers
store for the value Python reads. PostgreSQL keeps these columns in typed form
(``timestamptz``, ``jsonb``, ``uuid``, ``boolean``): one stored form per value,
nothing to compare. MySQL's native JSON type normalises too; MariaDB's does not.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from django.db import models

from rail_django.integrity.canonical import CANONICAL_FIELDS

#: The type a column is cast to for its stored text; vendors not listed are not checked.
_TEXT_TYPE = {"sqlite": "TEXT", "mysql": "CHAR"}


def _checked_fields(model: Any, connection: Any) -> list[models.Field]:
    """The canonical fields whose stored text can differ for one value on this database."""
    fields = [model._meta.get_field(name) for name in CANONICAL_FIELDS]
    if connection.vendor == "sqlite":
        # Dynamic typing: every column Django converts on the way out can hold other text for one value.
        # (Text columns are read as stored: Python and SQL see the same string.)
        converted = (models.DateTimeField, models.JSONField, models.UUIDField, models.BooleanField)
        return [field for field in fields if isinstance(field, converted)]
    if connection.vendor != "mysql":  # PostgreSQL: typed columns, one stored form per value
        return []
    text_json = getattr(connection, "mysql_is_mariadb", True)  # MySQL's JSON type normalises; MariaDB's is text
    checked = []
    for field in fields:
        if isinstance(field, models.JSONField) and text_json:
            checked.append(field)
        elif isinstance(field, models.BooleanField):
            checked.append(field)  # a TINYINT holds 2 as well as 1
        elif isinstance(field, models.UUIDField) and not connection.features.has_native_uuid_field:
            checked.append(field)
    return checked


def _duplicate_keys(text: str) -> list[str]:
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                duplicates.append(key)
            seen.add(key)
        return dict(items)

    try:
        json.loads(text, object_pairs_hook=pairs)
    except ValueError:
        return []
    return duplicates


class StoredFormCheck:
    """Reads the stored text of the checked columns of a range of sealed rows and judges it."""

    def __init__(self, model: Any, connection: Any) -> None:
        self.connection = connection
        self.fields = _checked_fields(model, connection)
        if not self.fields:
            self.sql = None
            return
        qn, cast = connection.ops.quote_name, _TEXT_TYPE[connection.vendor]
        columns = ", ".join(f"CAST({qn(f.column)} AS {cast})" for f in self.fields)
        self.sql = (
            f"SELECT {qn('chain_sequence')}, {columns} FROM {qn(model._meta.db_table)} "
            f"WHERE {qn('chain_sequence')} > %s AND {qn('chain_sequence')} <= %s"
        )

    def fetch(self, after: int, upto: int) -> dict[int, tuple[Any, ...]]:
        """Stored text of the checked columns, by ``chain_sequence``, for rows in (after, upto]."""
        if self.sql is None:
            return {}
        with self.connection.cursor() as cursor:
            cursor.execute(self.sql, [after, upto])
            return {int(row[0]): row[1:] for row in cursor.fetchall()}

    def fault(self, row: Any, stored: tuple[Any, ...] | None) -> str | None:
        """How ``row``'s stored text differs from its writers' form, or None."""
        if stored is None:
            return None if self.sql is None else "its stored form could not be read"
        for field, text in zip(self.fields, stored, strict=True):
            problem = self._column_fault(field, getattr(row, field.attname), text)
            if problem is not None:
                return problem
        return None

    def _column_fault(self, field: models.Field, value: Any, text: Any) -> str | None:
        text = text.decode("utf-8", "replace") if isinstance(text, (bytes, bytearray, memoryview)) else text
        if isinstance(field, models.JSONField):
            if text is None and value is None:
                return None
            if isinstance(text, str) and _is_written_form(field, value, text):
                return None
            duplicates = _duplicate_keys(text) if isinstance(text, str) else []
            why = f" (duplicate key {duplicates[0]!r}: SQL and Python read different values)" if duplicates else ""
            return f"{field.name} is not stored as its canonical JSON{why}: {_short(text)}"
        expected = self._expected_text(field, value)
        if text == expected:
            return None
        return f"{field.name} is stored as {_short(text)}, not in its canonical form {_short(expected)}"

    def _expected_text(self, field: models.Field, value: Any) -> str | None:
        prepared = field.get_db_prep_value(value, self.connection, prepared=False)
        if prepared is None:
            return None
        if isinstance(prepared, bool):
            return "1" if prepared else "0"
        return str(prepared)


def _is_written_form(field: models.JSONField, value: Any, text: str) -> bool:
    """Whether ``text`` is what a writer stores for ``value``: orjson's compact form (the database
    sink), or Django's ``json.dumps`` with the field's encoder (``bulk_create``, what orjson refuses)."""
    try:
        if text == orjson.dumps(value).decode():
            return True
    except TypeError:
        pass
    return text == json.dumps(value, cls=field.encoder)


def _short(text: Any, limit: int = 80) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
