"""Validators for settings: each takes a value and returns the problems with it (``[]`` when fine).

They are plain functions of the value (and, for aliases and models, of the
rest of the settings), so the same code stops ``manage.py check`` and makes
:func:`rail_django.conf.get_config` fall back to a default.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rail_django.capture.client_ip import is_too_wide

#: ``Problem.shown`` default: show the value itself.
SAME: Any = object()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a setting's value."""

    #: What is allowed, as the end of a sentence: "it must be True or False".
    allowed: str
    #: What is wrong when it is not the setting itself: ``AUDIT_ALERT_THRESHOLDS['typo']``.
    subject: str | None = None
    #: The value shown in the message (secrets show ``<hidden>``).
    shown: Any = SAME
    #: The check id when it is not the setting's own.
    check_id: str | None = None
    #: A warning (``W0NN``): reported, and the value is still used.
    warning: bool = False
    #: The hint when it is not "Fix <setting> in your settings."
    hint: str | None = None
    #: The whole message, when "<subject> is <value>; <allowed>." does not read well.
    message: str | None = None


Validator = Callable[[Any], list[Problem]]


def is_int(value: Any) -> bool:
    """A whole number that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def rule(predicate: Callable[[Any], bool], allowed: str) -> Validator:
    """One :class:`Problem` (``allowed``) when ``predicate(value)`` is false."""

    def validate(value: Any) -> list[Problem]:
        return [] if predicate(value) else [Problem(allowed)]

    return validate


def boolean() -> Validator:
    return rule(lambda v: isinstance(v, bool), "it must be True or False")


def integer(minimum: int, maximum: int | None = None, unit: str = "") -> Validator:
    unit = f"{unit} " if unit else ""
    allowed = (
        f"it must be a whole number {unit}from {minimum} to {maximum}"
        if maximum is not None
        else f"it must be a whole number {unit}>= {minimum}"
    )
    return rule(lambda v: is_int(v) and v >= minimum and (maximum is None or v <= maximum), allowed)


def seconds(allow_zero: bool = False) -> Validator:
    low = "0 (off) or more" if allow_zero else "> 0"
    return rule(
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and (v >= 0 if allow_zero else v > 0) and v < float("inf"),
        f"it must be a number of seconds {low}",
    )


def choice(values: Iterable[str]) -> Validator:
    allowed = list(values)
    return rule(lambda v: isinstance(v, str) and v in allowed, f"it must be one of {allowed}")


def path(optional: bool = False) -> Validator:
    def ok(value: Any) -> bool:
        if value is None:
            return optional
        return isinstance(value, (str, Path)) and bool(str(value).strip())

    return rule(ok, "it must be None or a path (str or pathlib.Path)" if optional else "it must be a file path (str or pathlib.Path)")


def alias_in(setting: str, default: dict[str, Any]) -> Validator:
    """A key of ``DATABASES`` / ``CACHES``."""

    def validate(value: Any) -> list[Problem]:
        from django.conf import settings

        configured = getattr(settings, setting, default)
        if isinstance(value, str) and value in configured:
            return []
        return [Problem(f"it must be one of {setting}: {sorted(configured)}")]

    return validate


def webhook_url(value: Any) -> list[Problem]:
    if value is None:
        return []
    parsed = urlparse(value) if isinstance(value, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        return [Problem("it must be None or an http(s) URL")]
    return []


def webhook_secret(value: Any) -> list[Problem]:
    if value is None:
        return []
    if not isinstance(value, str) or not value:
        return [Problem("it must be None or a non-empty string", shown="<hidden>")]
    if value.startswith("whsec_"):
        try:
            base64.b64decode(value[len("whsec_"):], validate=True)
        except (binascii.Error, ValueError):
            return [Problem("a 'whsec_' secret must be followed by base64", shown="whsec_<hidden>")]
    return []


def integrity_key(value: Any) -> list[Problem]:
    if value is None or (isinstance(value, (str, bytes)) and len(value) >= 16):
        return []
    return [Problem("it must be None or a secret of at least 16 characters", shown="<hidden>")]


def name_list(value: Any) -> list[Problem]:
    if isinstance(value, (list, tuple)) and all(isinstance(f, str) and f for f in value):
        return []
    return [Problem("it must be a list of non-empty strings")]


def non_empty_text(value: Any) -> list[Problem]:
    return [] if isinstance(value, str) and value else [Problem("it must be a non-empty string")]


def event_model(value: Any) -> list[Problem]:
    """``"app_label.ModelName"`` of an installed model (checked once the app registry is ready)."""
    from django.apps import apps
    from django.core.exceptions import AppRegistryNotReady

    allowed = "it must name an installed model as 'app_label.ModelName'"
    if not isinstance(value, str) or value.count(".") != 1 or not all(value.split(".")):
        return [Problem(allowed)]
    try:
        apps.get_model(value)
    except AppRegistryNotReady:  # too early to tell; checked again when the registry is ready
        return []
    except (LookupError, ValueError):
        return [Problem(allowed)]
    return []


def thresholds(defaults: dict[str, int]) -> Validator:
    def validate(value: Any) -> list[Problem]:
        if not isinstance(value, dict):
            return [Problem("it must be a dict")]
        problems = []
        for key, number in value.items():
            subject = f"AUDIT_ALERT_THRESHOLDS[{key!r}]"
            if key not in defaults:
                problems.append(Problem(f"the keys allowed are {sorted(defaults)}", subject=subject, shown=number))
            elif not is_int(number) or number < 1:
                problems.append(Problem("it must be a whole number >= 1", subject=subject, shown=number))
        return problems

    return validate


def trusted_proxies(value: Any) -> list[Problem]:
    """IPs or CIDRs (E012), none of them wide enough to trust the internet (E019)."""
    if not isinstance(value, (list, tuple)):
        return [Problem("it must be a list of IP addresses or CIDRs")]
    problems = []
    for entry in value:
        try:
            network = ipaddress.ip_network(str(entry).strip(), strict=False)
        except ValueError:
            problems.append(Problem("each entry must be an IP address or CIDR such as '10.0.0.0/8'", shown=entry))
            continue
        if is_too_wide(network):
            problems.append(Problem(
                "it trusts a large part of the internet as proxies, so any client could forge its address: "
                "list only your proxies' addresses (at most a /8 for IPv4, a /16 for IPv6 outside fc00::/7)",
                shown=entry, check_id="rail_django.E019",
            ))
    return problems


_ED25519_PKCS8 = bytes.fromhex("302e020100300506032b657004220420")
_PEM_BEGIN, _PEM_END = b"-----BEGIN PRIVATE KEY-----", b"-----END PRIVATE KEY-----"


def ed25519_pem(value: Any) -> bytes | None:
    """The PEM bytes of an unencrypted PKCS#8 Ed25519 private key held in ``value`` (PEM text or a path).

    Returns ``None`` when ``value`` is no such key. The check reads the key's
    structure (the Ed25519 algorithm identifier and a 32-byte seed), so it
    needs no cryptography library.
    """
    if isinstance(value, str) and "-----BEGIN" not in value:
        value = Path(value)
    if isinstance(value, Path):
        try:
            value = value.read_bytes()
        except (OSError, ValueError):
            return None
    if isinstance(value, str):
        value = value.encode("ascii", "replace")
    if not isinstance(value, bytes):
        return None
    pem = value.strip()
    if not (pem.startswith(_PEM_BEGIN) and pem.endswith(_PEM_END)):
        return None
    try:
        der = base64.b64decode(b"".join(pem[len(_PEM_BEGIN):-len(_PEM_END)].split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return pem + b"\n" if der.startswith(_ED25519_PKCS8) and len(der) == len(_ED25519_PKCS8) + 32 else None


def signing_key(value: Any) -> list[Problem]:
    if value is None or ed25519_pem(value) is not None:
        return []
    is_path = isinstance(value, Path) or (isinstance(value, str) and "-----BEGIN" not in value)
    return [Problem(
        "it must be None, or an unencrypted Ed25519 private key in PEM (unencrypted PKCS#8), "
        "given as text, bytes or the path of a readable file (e.g. from: openssl genpkey -algorithm ed25519)",
        shown=str(value) if is_path else "<hidden>",
    )]
