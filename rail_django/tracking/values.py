"""Field values in a change record: snapshots, comparison, JSON form, JSON Pointer diffs."""

from __future__ import annotations

import copy
import hashlib
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.duration import duration_iso_string

from rail_django.tracking.registry import BINARY, FILE, JSON, PLAIN, TrackedField

#: Most JSON Pointer paths listed for one JSON field; a bigger change is recorded as [old, new].
MAX_JSON_PATHS = 100

_TEXT_FIELDS = (models.CharField, models.TextField)


def snapshot_value(kind: str, value: Any) -> Any:
    """The value as it must be remembered: JSON documents copied (they are changed in place), files by name."""
    if kind == JSON:
        return copy.deepcopy(value) if isinstance(value, (dict, list)) else value
    if kind == FILE:
        return getattr(value, "name", value) if value is not None else None
    if kind == BINARY and isinstance(value, memoryview):
        return bytes(value)
    return value


def _normal(tracked: TrackedField, value: Any) -> Any:
    """A value in the field's Python type: ``"12.50"`` assigned to a DecimalField compares as ``Decimal``."""
    if value is None or tracked.kind != PLAIN or isinstance(tracked.field, _TEXT_FIELDS):
        return value
    try:
        return tracked.field.to_python(value)
    except (ValidationError, TypeError, ValueError):
        return value


def differs(tracked: TrackedField, old: Any, new: Any) -> bool:
    """True when ``new`` is a different value from ``old`` (``1`` and ``Decimal("1.00")`` are the same amount)."""
    if old is new:
        return False
    if type(old) is type(new):
        if tracked.kind == JSON:
            return not json_equal(old, new)
        return old != new
    if old is None or new is None:
        return True
    return _normal(tracked, old) != _normal(tracked, new)


def json_equal(old: Any, new: Any) -> bool:
    """Equality that tells ``1`` from ``True`` and ``1.0`` (JSON has three different values there)."""
    if type(old) is not type(new):
        return False
    if isinstance(old, dict):
        return old.keys() == new.keys() and all(json_equal(old[k], new[k]) for k in old)
    if isinstance(old, list):
        return len(old) == len(new) and all(json_equal(a, b) for a, b in zip(old, new, strict=True))
    return old == new


def to_json(tracked: TrackedField, value: Any) -> Any:
    """The value as stored in the event: dates ISO 8601, ``Decimal`` and UUID as strings, a file by name."""
    if value is None:
        return None
    if tracked.kind == FILE:
        return getattr(value, "name", value) or ""
    if tracked.kind == BINARY:
        return "sha256:" + hashlib.sha256(bytes(value)).hexdigest()
    value = _normal(tracked, value)
    if isinstance(value, (str, bool, int, float, dict, list)):
        return value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return duration_iso_string(value)
    if isinstance(value, Decimal):
        return _decimal_text(tracked.field, value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (tuple, set, frozenset)):
        return [to_json(tracked, item) if not isinstance(item, (str, int, float)) else item for item in value]
    return str(value)


def _decimal_text(field: models.Field, value: Decimal) -> str:
    """A decimal as the column stores it: ``100`` assigned to ``decimal_places=2`` is ``"100.00"``."""
    places = getattr(field, "decimal_places", None)
    if places is None or not value.is_finite():
        return str(value)
    try:
        return str(value.quantize(Decimal(1).scaleb(-places)))
    except InvalidOperation:  # more digits than the context allows: as given
        return str(value)


def _pointer(path: str, key: Any) -> str:
    # RFC 6901: "~" is written "~0" and "/" is written "~1".
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _walk(old: Any, new: Any, path: str, out: dict[str, list[Any]]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            if key not in new:
                out[_pointer(path, key)] = [old[key], None]
            elif key not in old:
                out[_pointer(path, key)] = [None, new[key]]
            elif not json_equal(old[key], new[key]):
                _walk(old[key], new[key], _pointer(path, key), out)
        return
    if isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            before = old[index] if index < len(old) else None
            after = new[index] if index < len(new) else None
            if index >= len(old) or index >= len(new) or not json_equal(before, after):
                if index < len(old) and index < len(new):
                    _walk(before, after, _pointer(path, index), out)
                else:
                    out[_pointer(path, index)] = [before, after]
        return
    out[path] = [old, new]


def json_diff(old: Any, new: Any) -> dict[str, list[Any]] | list[Any]:
    """The changed JSON Pointer paths of a document, ``{"/a/b": [old, new]}``.

    A key that appears or disappears has ``None`` on its missing side. When
    either side is not a document (``None`` -> ``{...}``) or more than
    :data:`MAX_JSON_PATHS` paths changed, the result is the plain ``[old, new]`` pair.
    """
    if not (isinstance(old, (dict, list)) and isinstance(new, (dict, list)) and type(old) is type(new)):
        return [old, new]
    out: dict[str, list[Any]] = {}
    _walk(old, new, "", out)
    if len(out) > MAX_JSON_PATHS:
        return [old, new]
    return out
