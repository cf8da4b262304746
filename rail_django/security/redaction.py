"""Redaction: secrets never reach a sink.

Two passes share one configuration (``AUDIT_REDACTION_FIELDS`` and
``AUDIT_REDACTION_MASK``):

* keys: any mapping key containing a configured word (case-insensitive
  substring) has its value replaced by the mask, at any depth of dicts,
  lists and tuples;
* text: inside free text (error messages, string values) only the secret part
  of ``password=...``, ``token: ...``, ``Authorization: Bearer ...`` or a
  JWT-shaped string is masked, so the rest of the message stays evidence.

The same pass makes values JSON-safe (unknown objects are stringified) and
bounds their size, so one hostile value cannot bloat a row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache
from typing import Any
from uuid import UUID

#: Longest string kept in context values and error text; longer ones are cut.
MAX_STRING_LENGTH = 4096
#: Deepest nesting kept in context values; deeper levels become a marker.
MAX_DEPTH = 8
#: Most items kept from one dict, list or tuple.
MAX_ITEMS = 200

_JWT = r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"
#: Most distinct mapping keys whose verdict a redactor remembers.
_KEY_CACHE_SIZE = 4096


def _may_hold_secret(text: str) -> bool:
    """False only when the text pattern cannot match ``text``, so the scan can be skipped.

    Every alternative of the pattern needs ``=`` or ``:``, a scheme word or
    ``eyJ`` (case-insensitively). Non-ASCII text is always scanned: Unicode
    case folding lets characters such as ``ſ`` or ``ı`` match ASCII letters.
    """
    if not text.isascii():
        return True
    if "=" in text or ":" in text:
        return True
    lowered = text.lower()
    return "eyj" in lowered or "bearer" in lowered or "basic" in lowered or "digest" in lowered


class Redactor:
    """Masks secrets in nested values and in free text."""

    def __init__(self, fields: Iterable[str], mask: str) -> None:
        self.fields = tuple(f.lower() for f in fields if f)
        self.mask = mask
        parts = [
            # key=value, key: value, "key": "value". The key is any short token
            # (bounded, so the scan stays linear on hostile input); whether it
            # names a secret is decided in _replace.
            r"(?P<key>(?<![\w.-])(?P<name>[\w.-]{1,64})[\"']?\s*[=:]\s*)"
            r"(?P<value>(?:(?:bearer|basic|token|digest)\s+)?(?:\"[^\"]*\"|'[^']*'|[^\s,;&\"']+))",
            # Authorization schemes: keep the scheme, mask the credential
            # (a credential has a digit or a symbol: "basic authentication" stays).
            r"(?P<scheme>\b(?:bearer|basic|digest)\s+)"
            r"(?P<cred>(?=[A-Za-z0-9._~+/=:-]*[0-9._~+/=-])[A-Za-z0-9._~+/=:-]{6,})",
            rf"(?P<jwt>{_JWT})",
        ]
        self._text_pattern = re.compile("|".join(parts), re.IGNORECASE)
        self._sensitive_keys: dict[str, bool] = {}

    def is_sensitive_key(self, key: Any) -> bool:
        name = str(key)
        known = self._sensitive_keys.get(name)
        if known is None:
            lowered = name.lower()
            known = any(f in lowered for f in self.fields)
            if len(self._sensitive_keys) < _KEY_CACHE_SIZE:  # keys repeat: remember the answer
                self._sensitive_keys[name] = known
        return known

    def scrub_text(self, text: str) -> str:
        """Mask secret values inside ``text``, keeping the rest readable."""
        if len(text) > MAX_STRING_LENGTH:
            text = text[:MAX_STRING_LENGTH] + "…[truncated]"
        if "\x00" in text:  # PostgreSQL text and jsonb refuse NUL
            text = text.replace("\x00", "\ufffd")
        if not _may_hold_secret(text):
            return text
        out: list[str] = []
        pos = 0
        search = self._text_pattern.search
        while (match := search(text, pos)) is not None:
            if match.group("jwt"):
                out += (text[pos:match.start()], self.mask)
            elif match.group("scheme"):
                out += (text[pos:match.end("scheme")], self.mask)
            elif self.is_sensitive_key(match.group("name")):
                out += (text[pos:match.end("key")], self.mask)
            else:
                # Not a secret's key: keep it and scan its value again ("a=password=x").
                out.append(text[pos:match.end("key")])
                pos = match.end("key")
                continue
            pos = match.end()
        out.append(text[pos:])
        return "".join(out)

    def clean(self, value: Any, depth: int = 0) -> Any:
        """Return ``value`` JSON-safe, size-bounded and with secrets masked."""
        if value is None or isinstance(value, (bool, int)):
            return value
        if isinstance(value, float):
            return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
        if isinstance(value, str):
            return self.scrub_text(value)
        if depth >= MAX_DEPTH:
            return "…[too deep]"
        if isinstance(value, Mapping):
            cleaned: dict[str, Any] = {}
            for index, (key, item) in enumerate(value.items()):
                if index >= MAX_ITEMS:
                    cleaned["…"] = f"[{len(value) - MAX_ITEMS} more items]"
                    break
                name = str(key)[:256]
                cleaned[name] = self.mask if self.is_sensitive_key(name) else self.clean(item, depth + 1)
            return cleaned
        if isinstance(value, (list, tuple, set, frozenset)):
            items = list(value)
            cleaned_items = [self.clean(item, depth + 1) for item in items[:MAX_ITEMS]]
            if len(items) > MAX_ITEMS:
                cleaned_items.append(f"…[{len(items) - MAX_ITEMS} more items]")
            return cleaned_items
        if isinstance(value, (datetime, date, time)):
            return value.isoformat()
        if isinstance(value, (UUID, Decimal)):
            return str(value)
        if isinstance(value, bytes):
            return self.scrub_text(value.decode("utf-8", "replace"))
        try:
            text = str(value)
        except Exception:  # a hostile __str__ must not break emit
            text = f"<unprintable {type(value).__name__}>"
        return self.scrub_text(text)


@lru_cache(maxsize=8)
def get_redactor(fields: tuple[str, ...], mask: str) -> Redactor:
    """A cached :class:`Redactor` for one configuration."""
    return Redactor(fields, mask)


def current_redactor() -> Redactor:
    """The redactor for the current settings."""
    from rail_django.conf import get_config

    config = get_config()
    return get_redactor(config.redaction_fields, config.redaction_mask)


def redact(value: Any) -> Any:
    """Mask secrets in ``value`` (nested dicts/lists/tuples or text) with the current settings."""
    return current_redactor().clean(value)
