"""What a row's hash covers: its fields as Python reads them back, and its place in the chain.

The hash is computed over the values Django reads back from the database (so
PostgreSQL's ``jsonb`` key order or a backend's number formatting cannot break
it). That alone does not pin the *stored text* on backends that keep JSON or
timestamps as text: :mod:`rail_django.integrity.stored_form` checks that part.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timezone
from typing import Any

#: The hash "before" the first row of a chain.
GENESIS = "0" * 64

#: The fields a row's hash covers (every field an event is stored in).
CANONICAL_FIELDS = (
    "event_id", "event_type", "severity", "user_id", "username", "client_ip", "user_agent", "timestamp",
    "request_path", "request_method", "additional_data", "success", "error_message", "correlation_id",
    "session_id",
)


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds")
    if value is None or isinstance(value, (bool, int, float, str, dict, list)):
        return value
    return str(value)


def canonical(row: Any, sequence: int) -> bytes:
    """The bytes a row's hash covers: its stored fields and its place in the chain."""
    data = {name: _canonical_value(getattr(row, name)) for name in CANONICAL_FIELDS}
    data["chain_sequence"] = sequence
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def chain_hash(key: bytes, previous: str, row: Any, sequence: int) -> str:
    """``HMAC-SHA256(key, previous hash + canonical(row))``: the row's link in the chain."""
    return hmac.new(key, previous.encode("ascii") + b"\n" + canonical(row, sequence), hashlib.sha256).hexdigest()
