"""Redaction: secrets never reach a sink.

Two passes share one configuration (``AUDIT_REDACTION_FIELDS`` and
``AUDIT_REDACTION_MASK``):

* keys: any mapping key containing a configured word has its value replaced
  by the mask, at any depth of dicts, lists and tuples. Case and separators
  are ignored on both sides (``credit_card`` masks ``creditCard``,
  ``credit-card`` and ``CREDITCARD``), so every key the plain
  case-insensitive substring rule matches is still matched. A word written
  ``=word`` matches only whole parts of a key (``=pin`` masks ``pin``,
  ``user_pin``, ``pinCode``, not ``shipping``): short words that would
  otherwise hide ordinary data;
* text: inside free text (error messages, string values) only the secret part
  of ``password=...``, ``token: ...``, ``Authorization: Bearer ...``, the
  password of a URL (``postgres://app:PASS@db``) or a JWT-shaped string is
  masked, so the rest of the message stays evidence.

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

from rail_django.conf import get_config

#: Longest string kept in context values and error text; longer ones are cut.
MAX_STRING_LENGTH = 4096
#: Deepest nesting kept in context values; deeper levels become a marker.
MAX_DEPTH = 8
#: Most items kept from one dict, list or tuple.
MAX_ITEMS = 200
#: Longest dict key kept (whether it names a secret is decided on the whole key).
MAX_KEY_LENGTH = 256
#: Integers wider than this many bits are stored as text (JSON readers, MySQL and
#: Python's own int-to-str limit stop at far fewer digits than an int can hold).
MAX_INT_BITS = 63
_TRUNCATED = "…[truncated]"
_SURROGATE = re.compile(r"[\ud800-\udfff]")

# A JWT starts a token: anchoring it keeps the scan linear on text like "eyJeyJeyJ...".
_JWT = r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"


def _as_text(value: Any) -> str:
    """``str(value)``, or a placeholder when its ``__str__`` fails (a hostile value must not break emit)."""
    try:
        text = str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
    return text if isinstance(text, str) else f"<unprintable {type(value).__name__}>"


#: Most distinct mapping keys whose verdict a redactor remembers.
_KEY_CACHE_SIZE = 4096

#: A configured word starting with this matches whole key segments only.
SEGMENT_MARKER = "="
# Separators (anything but letters and digits) are ignored when keys are compared.
_SEPARATORS = re.compile(r"[\W_]+")
# The parts of a key: "userPIN_code2" -> user, PIN, code, 2; "OTPCode" -> OTP, Code. Each
# alternative is a run of one character class, so the scan is linear.
_SEGMENT = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+|[^\W\d_]+")
# A URL's password: scheme://user:PASSWORD@host. The scheme starts a run (the lookbehind), so
# a long run of letters is scanned once, not once per letter.
_URL_PASSWORD = r"(?P<url>(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:\"'<>]*:)(?P<urlpass>[^\s/?#@\"'<>]+)@"


def _flat(text: str) -> str:
    """``text`` lower-cased without separators: ``Credit-Card`` -> ``creditcard``."""
    return _SEPARATORS.sub("", text.lower())


def _segments(text: str) -> tuple[str, ...]:
    """The lower-cased parts of a key, split at separators, case changes and digits."""
    return tuple(part.lower() for part in _SEGMENT.findall(text))


class _KeyMatcher:
    """Decides whether a mapping key (or a ``key=value`` name in text) names a secret."""

    def __init__(self, words: Iterable[str]) -> None:
        substrings, raw, segment_words = set(), set(), set()
        for word in words:
            if word.startswith(SEGMENT_MARKER):
                parts = _segments(word[len(SEGMENT_MARKER):])
                if parts:
                    segment_words.add(parts)
            elif flat := _flat(word):
                substrings.add(flat)
            else:  # only separators ("__"): compared as written
                raw.add(word.lower())
        self._substrings = tuple(sorted(substrings))
        self._raw = tuple(sorted(raw))
        self._segment_words = tuple(sorted(segment_words))
        # One C-level search for "does any word occur in this flat text" (see may_occur_in).
        flat_words = sorted({*substrings, *("".join(parts) for parts in segment_words)})
        self._flat_words = re.compile("|".join(map(re.escape, flat_words))) if flat_words else None

    def may_occur_in(self, lowered: str) -> bool:
        """False only when no key inside ``lowered`` (lower-cased text) can name a secret.

        Every key this matcher accepts holds one of its words in its flat form, and a
        key's flat form is a substring of the whole text's flat form.
        """
        if self._raw and any(word in lowered for word in self._raw):
            return True
        return self._flat_words is not None and self._flat_words.search(_SEPARATORS.sub("", lowered)) is not None

    def __call__(self, name: str) -> bool:
        lowered = name.lower()
        flat = _SEPARATORS.sub("", lowered)
        if any(word in flat for word in self._substrings) or any(word in lowered for word in self._raw):
            return True
        # Split the key only when a whole-segment word occurs in it at all (rare).
        candidates = [parts for parts in self._segment_words if "".join(parts) in flat]
        if not candidates:
            return False
        segments = _segments(name)
        return any(
            segments[start:start + len(parts)] == parts
            for parts in candidates
            for start in range(len(segments) - len(parts) + 1)
        )


def _may_hold_secret(text: str, matcher: _KeyMatcher) -> bool:
    """False only when nothing in ``text`` can be masked, so the scan can be skipped.

    The scheme and JWT alternatives need a scheme word or ``eyJ``, the URL pass
    ``://``, and a ``key=value`` / ``key: value`` pair needs ``=`` or ``:`` and
    a key holding a configured word (an ISO timestamp or "Order #3: paid" has
    none). Non-ASCII text is always scanned: Unicode case folding lets
    characters such as ``ſ`` or ``ı`` match ASCII letters.
    """
    if not text.isascii():
        return True
    lowered = text.lower()
    if "eyj" in lowered or "bearer" in lowered or "basic" in lowered or "digest" in lowered or "://" in text:
        return True
    return ("=" in text or ":" in text) and matcher.may_occur_in(lowered)


class Redactor:
    """Masks secrets in nested values and in free text."""

    def __init__(self, fields: Iterable[str], mask: str) -> None:
        self.fields = tuple(f.lower() for f in fields if f)
        self.mask = mask
        self._matches_key = _KeyMatcher(self.fields)
        # Its own pass, run only on text holding "://" (the main scan would take "postgres:" as a key).
        self._url_password = re.compile(_URL_PASSWORD, re.IGNORECASE)
        parts = [
            # key=value, key: value, "key": "value". The key is a whole token,
            # taken at once (a lookahead and its backreference: no backtracking,
            # so the scan stays linear on hostile input, and a long key such as
            # "..._database_password" is still seen); whether it names a secret
            # is decided in scrub_text.
            r"(?P<key>(?<![\w.-])(?=(?P<name>[\w.-]+))(?P=name)[\"']?\s*[=:]\s*)"
            r"(?P<value>(?:(?:bearer|basic|token|digest)\s+)?(?:\"[^\"]*\"|'[^']*'|[^\s,;&\"']+))",
            # Authorization schemes: keep the scheme, mask the credential
            # (a credential has a digit or a symbol: "basic authentication" stays).
            r"(?P<scheme>\b(?:bearer|basic|digest)\s+)"
            r"(?P<cred>(?=[A-Za-z0-9._~+/=:-]*[0-9._~+/=-])[A-Za-z0-9._~+/=:-]{6,})",
            rf"(?P<jwt>{_JWT})",
        ]
        self._text_pattern = re.compile("|".join(parts), re.IGNORECASE)
        self._sensitive_keys: dict[str, bool] = {}
        # str key -> (stored name, names a secret): the same keys come back in every event.
        self._clean_keys: dict[str, tuple[str, bool]] = {}

    def is_sensitive_key(self, key: Any) -> bool:
        """Whether ``key`` names a secret: a configured word inside it, case and separators ignored."""
        name = str(key)
        known = self._sensitive_keys.get(name)
        if known is None:
            known = self._matches_key(name)
            if len(self._sensitive_keys) < _KEY_CACHE_SIZE and len(name) <= MAX_KEY_LENGTH:  # keys repeat
                self._sensitive_keys[name] = known
        return known

    def scrub_text(self, text: str) -> str:
        """Mask secret values inside ``text``, keeping the rest readable.

        The result is at most ``MAX_STRING_LENGTH`` characters (plus a
        truncation marker) and storable anywhere: NUL (refused by PostgreSQL)
        and lone surrogates (not encodable as UTF-8) become U+FFFD.
        """
        if len(text) > MAX_STRING_LENGTH:
            text = text[:MAX_STRING_LENGTH] + _TRUNCATED
        if "\x00" in text:  # PostgreSQL text and jsonb refuse NUL
            text = text.replace("\x00", "\ufffd")
        if not text.isascii() and _SURROGATE.search(text):
            text = _SURROGATE.sub("\ufffd", text)
        if not _may_hold_secret(text, self._matches_key):
            return text
        if "://" in text:
            text = self._url_password.sub(lambda m: f"{m.group('url')}{self.mask}@", text)
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
        scrubbed = "".join(out)
        if len(scrubbed) > MAX_STRING_LENGTH + len(_TRUNCATED):  # masks are longer than short secrets
            scrubbed = scrubbed[:MAX_STRING_LENGTH] + _TRUNCATED
        return scrubbed

    def _clean_key(self, key: Any) -> tuple[str, bool]:
        """``(stored name, whether the key names a secret)`` of one mapping key."""
        known = self._clean_keys.get(key) if key.__class__ is str else None
        if known is not None:
            return known
        key_text = _as_text(key)
        name = self.scrub_text(key_text[:MAX_KEY_LENGTH])[:MAX_KEY_LENGTH]
        known = (name, self.is_sensitive_key(key_text))  # the whole key: a cut must not hide "password"
        if key.__class__ is str and len(self._clean_keys) < _KEY_CACHE_SIZE and len(key) <= MAX_KEY_LENGTH:
            self._clean_keys[key] = known
        return known

    def clean(self, value: Any, depth: int = 0) -> Any:
        """Return ``value`` JSON-safe, size-bounded and with secrets masked."""
        if value.__class__ is str:  # the common case first
            return self.scrub_text(value)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            if value.bit_length() <= MAX_INT_BITS:
                return value
            try:
                return self.scrub_text(str(value))
            except ValueError:  # more digits than Python converts
                return f"…[integer of {value.bit_length()} bits]"
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
                name, sensitive = self._clean_key(key)
                cleaned[name] = self.mask if sensitive else self.clean(item, depth + 1)
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
        return self.scrub_text(_as_text(value))  # a hostile __str__ must not break emit


@lru_cache(maxsize=8)
def get_redactor(fields: tuple[str, ...], mask: str) -> Redactor:
    """A cached :class:`Redactor` for one configuration."""
    return Redactor(fields, mask)


_last_config: tuple[Any, Redactor] | None = None


def current_redactor() -> Redactor:
    """The redactor for the current settings."""
    global _last_config
    config = get_config()
    last = _last_config
    if last is not None and last[0] is config:  # the config object is replaced when settings change
        return last[1]
    redactor = get_redactor(config.redaction_fields, config.redaction_mask)
    _last_config = (config, redactor)
    return redactor


def redact(value: Any) -> Any:
    """Mask secrets in ``value`` (nested dicts/lists/tuples or text) with the current settings."""
    return current_redactor().clean(value)
