"""Keys and signatures of the integrity chain: HMAC-SHA256 or Ed25519.

A :class:`Signer` signs the chain's statements (its head, its retention
anchor, and checkpoints) and says which key the row hashes are computed with:

- ``AUDIT_INTEGRITY_KEY`` alone: :class:`HmacSigner`. Rows are chained with
  HMAC-SHA256 under the secret and statements are HMACs; only holders of the
  secret can verify, and each of them could also forge.
- ``AUDIT_INTEGRITY_SIGNING_KEY`` (an Ed25519 private key): :class:`Ed25519Signer`.
  Rows are chained with a hash anyone can recompute (keyed with the public
  key), and statements carry Ed25519 signatures. An auditor verifies with the
  public key alone (``audit_management verify --public-key``) and cannot forge.
"""

from __future__ import annotations

import abc
import base64
import binascii
import hashlib
import hmac
import logging
import os
import threading
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)
from django.core.exceptions import ImproperlyConfigured

from rail_django.conf import get_config, on_config_change, read_setting

logger = logging.getLogger("rail_django.audit")

HMAC_SHA256 = "hmac-sha256"
ED25519 = "ed25519"
_ED25519_PREFIX = "ed25519:"


class Signer(abc.ABC):
    """Signs and checks the chain's statements; names the key the row hashes use."""

    algorithm: str
    #: 16 hex characters naming the key without revealing it (checkpoints carry it).
    signer_id: str
    #: The key of the row hashes (:func:`rail_django.integrity.canonical.chain_hash`).
    row_key: bytes

    @property
    def can_sign(self) -> bool:
        return True

    @abc.abstractmethod
    def sign(self, message: bytes) -> str:
        """The signature of ``message``, as stored text."""

    @abc.abstractmethod
    def verify(self, message: bytes, signature: str) -> bool:
        """Whether ``signature`` is this key's signature of ``message``."""

    def describe(self) -> str:
        return f"{self.algorithm} key {self.signer_id}"


class HmacSigner(Signer):
    """HMAC-SHA256 under ``AUDIT_INTEGRITY_KEY``: verifiable by the holders of the secret."""

    algorithm = HMAC_SHA256

    def __init__(self, secret: bytes) -> None:
        self.row_key = secret
        self.signer_id = hmac.new(secret, b"rail-django signer id", hashlib.sha256).hexdigest()[:16]

    def sign(self, message: bytes) -> str:
        return hmac.new(self.row_key, message, hashlib.sha256).hexdigest()

    def verify(self, message: bytes, signature: str) -> bool:
        return hmac.compare_digest(str(signature), self.sign(message))


class Ed25519Signer(Signer):
    """Ed25519: signs with the private key (the sealer), checks with the public key (anyone)."""

    algorithm = ED25519

    def __init__(self, public_key: Ed25519PublicKey, private_key: Ed25519PrivateKey | None = None) -> None:
        self._public = public_key
        self._private = private_key
        raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        # Row hashes are keyed with public material: anyone holding the public key recomputes them.
        self.row_key = b"rail-django ed25519 chain\n" + raw
        self.signer_id = hashlib.sha256(raw).hexdigest()[:16]

    @property
    def can_sign(self) -> bool:
        return self._private is not None

    def sign(self, message: bytes) -> str:
        if self._private is None:
            raise ImproperlyConfigured("Signing needs the Ed25519 private key (AUDIT_INTEGRITY_SIGNING_KEY)")
        return _ED25519_PREFIX + base64.b64encode(self._private.sign(message)).decode("ascii")

    def verify(self, message: bytes, signature: str) -> bool:
        text = str(signature)
        if not text.startswith(_ED25519_PREFIX):
            return False
        try:
            self._public.verify(base64.b64decode(text[len(_ED25519_PREFIX):], validate=True), message)
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


def describe_signature(signature: str) -> str:
    """What kind of signature a stored value looks like (for error messages)."""
    text = str(signature)
    if text.startswith(_ED25519_PREFIX):
        return "an Ed25519 signature"
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return "an HMAC-SHA256 signature"
    return "no valid signature"


def _pem_bytes(value: Any, setting: str) -> bytes:
    """PEM text given inline (str or bytes), or read from the file a path names."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str) and "-----BEGIN" in value:
        data = value.encode("ascii", "replace")
    elif isinstance(value, (str, os.PathLike)):
        try:
            data = Path(value).read_bytes()
        except OSError as exc:
            raise ImproperlyConfigured(f"{setting}: cannot read the key file {str(value)!r}: {exc.strerror}") from exc
    else:
        raise ImproperlyConfigured(f"{setting} must be PEM text, PEM bytes or a file path, not {type(value).__name__}")
    return data


def load_private_key(value: Any, setting: str = "AUDIT_INTEGRITY_SIGNING_KEY") -> Ed25519PrivateKey:
    """An unencrypted Ed25519 private key from PEM text/bytes or a PEM file path."""
    try:
        key = load_pem_private_key(_pem_bytes(value, setting), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ImproperlyConfigured(
            f"{setting} is not an unencrypted PEM private key (make one with "
            f"`openssl genpkey -algorithm ed25519 -out audit-signing.pem`): {exc}"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"{setting} must be an Ed25519 private key, not {type(key).__name__}")
    return key


def load_public_key(path: str | os.PathLike) -> Ed25519Signer:
    """A verifier for the Ed25519 public key in the PEM file ``path`` (it cannot sign)."""
    data = _pem_bytes(Path(path), "--public-key")
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ImproperlyConfigured(
            f"--public-key {str(path)!r} is not a PEM public key (export it with "
            f"`openssl pkey -in audit-signing.pem -pubout`): {exc}"
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ImproperlyConfigured(f"--public-key {str(path)!r} is not an Ed25519 public key")
    return Ed25519Signer(key)


def signer_from_private_key(value: Any) -> Ed25519Signer:
    private = load_private_key(value)
    return Ed25519Signer(private.public_key(), private)


def _hmac_secret() -> bytes | None:
    key = read_setting("AUDIT_INTEGRITY_KEY")
    if not key:
        return None
    return key if isinstance(key, bytes) else str(key).encode("utf-8")


_cache_lock = threading.Lock()
#: (signer, error) for the current settings; None until first asked.
_cached: tuple[Signer | None, ImproperlyConfigured | None] | None = None
_reported: set[str] = set()


def _reset_cache() -> None:
    global _cached
    with _cache_lock:
        _cached = None
        _reported.clear()  # a new configuration's problems are reported again


on_config_change(_reset_cache)


def _load_configured() -> tuple[Signer | None, ImproperlyConfigured | None]:
    signing_key = get_config().integrity_signing_key
    if signing_key is not None:
        try:
            return signer_from_private_key(signing_key), None
        except ImproperlyConfigured as exc:
            return None, exc
    secret = _hmac_secret()
    return (HmacSigner(secret) if secret is not None else None), None


def configured_signer() -> Signer | None:
    """The signer the settings ask for (the signing key wins over the HMAC key), or None.

    Raises :class:`~django.core.exceptions.ImproperlyConfigured` when the
    signing key cannot be loaded. Cached until the settings change.
    """
    global _cached
    cached = _cached
    if cached is None:
        with _cache_lock:
            if _cached is None:
                _cached = _load_configured()
            cached = _cached
    signer, error = cached
    if error is not None:
        raise error
    return signer


def chain_signer() -> Signer | None:
    """:func:`configured_signer` for the delivery path: a key that cannot be loaded is logged
    (once per message) and treated as no key, never raised into the writer."""
    try:
        return configured_signer()
    except ImproperlyConfigured as exc:
        message = str(exc)
        if message not in _reported:
            _reported.add(message)
            logger.error("Audit rows are not sealed: %s", message)
        return None
