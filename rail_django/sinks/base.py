"""The interface every sink implements."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Protocol

import orjson

from rail_django.events.types import SecurityEvent


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


#: ``json.dumps(..., ensure_ascii=False, separators=(",", ":"), default=str)``, built once: the
#: fallback for what orjson refuses (integers beyond 64 bits, lone surrogates, non-string keys).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)

#: What JSON encoders leave raw (they escape only U+0000-U+001F), in UTF-8: the C1 control characters
#: U+0080-U+009F (NEL, and CSI, which terminals read as the start of an escape sequence) and the line
#: and paragraph separators U+2028/U+2029.
_RAW_CONTROLS = re.compile(b"\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]")
#: Each of them as its JSON escape.
_ESCAPES = {
    **{chr(code).encode(): f"\\u{code:04x}".encode() for code in range(0x80, 0xA0)},
    "\u2028".encode(): b"\\u2028",
    "\u2029".encode(): b"\\u2029",
}


def _escape(match: re.Match[bytes]) -> bytes:
    return _ESCAPES[match.group()]


def _encode(event: SecurityEvent) -> bytes:
    try:
        # orjson (a compiled encoder) is 5-10x faster than the json module: this runs on the request
        # thread. It writes UUIDs and datetimes exactly as to_dict() does (str(), isoformat()).
        data = orjson.dumps(event.wire_fields(), default=str)
    except TypeError:  # orjson.JSONEncodeError included
        data = _ENCODER.encode(event.to_dict()).encode("utf-8")
    if not data.isascii():  # (ASCII, the usual case, holds none of them: no scan)
        data = _RAW_CONTROLS.sub(_escape, data)
    return data


def event_line(event: SecurityEvent) -> bytes:
    """One event as a single UTF-8 JSON line ending in ``\\n`` (newlines, every control character
    U+0000-U+001F and U+0080-U+009F, and U+2028/U+2029 escaped).

    Encoded once per event and kept on it: the journal (on the request
    thread), the file sink and the webhook all send the same line. Events are
    not changed after ``security.emit`` builds them.
    """
    cached = event.__dict__.get("_json_line")
    if cached is None:
        cached = event.__dict__["_json_line"] = _encode(event) + b"\n"
    return cached


def event_json(event: SecurityEvent) -> str:
    """:func:`event_line` as text, without the newline."""
    return event_line(event)[:-1].decode("utf-8")
