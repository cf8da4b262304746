"""The interface every sink implements."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

from rail_django.security.events import SecurityEvent


class Sink(Protocol):
    """Writes batches of events somewhere; raises when a batch could not be written.

    ``write`` is called by the delivery layer (off the request thread when
    ``SECURITY_EVENT_ASYNC`` is on), which retries, reports and never lets the
    exception reach a request.
    """

    name: str

    def write(self, events: Sequence[SecurityEvent]) -> None: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def close(self) -> None: ...


#: ``json.dumps(..., ensure_ascii=False, separators=(",", ":"), default=str)``, built once.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


#: Line breaks the JSON encoder leaves raw (it escapes only U+0000-U+001F), as JSON escapes.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def event_json(event: SecurityEvent) -> str:
    """One event as a single JSON line (newlines, U+2028/U+2029, NEL and control characters escaped).

    Encoded once per event and kept on it: the journal (on the request
    thread), the file sink and the webhook all send the same line. Events are
    not changed after ``security.emit`` builds them.
    """
    cached = event.__dict__.get("_json_line")
    if cached is not None:
        return cached
    text = _ENCODER.encode(event.to_dict())
    text = text if text.isascii() else text.translate(_LINE_BREAKS)
    event.__dict__["_json_line"] = text
    return text
