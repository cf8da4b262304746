"""The event vocabulary (types, outcomes, severities) and the event value object."""

from __future__ import annotations

import enum
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Severity(str, enum.Enum):
    """How urgent an event is, lowest first."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    def __str__(self) -> str:
        return self.value

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


class Outcome(str, enum.Enum):
    """What happened to the attempt the event describes."""

    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"
    BLOCKED = "blocked"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


class EventType(str, enum.Enum):
    """Every event type rail-django knows; values are the stored strings."""

    AUTH_LOGIN_SUCCESS = "auth.login.success"
    AUTH_LOGIN_FAILURE = "auth.login.failure"
    AUTH_LOGOUT = "auth.logout"
    AUTH_TOKEN_ISSUED = "auth.token.issued"
    AUTH_TOKEN_REFRESHED = "auth.token.refreshed"
    AUTH_TOKEN_REVOKED = "auth.token.revoked"
    AUTH_TOKEN_INVALID = "auth.token.invalid"
    AUTH_MFA_SUCCESS = "auth.mfa.success"
    AUTH_MFA_FAILURE = "auth.mfa.failure"
    AUTHZ_PERMISSION_GRANTED = "authz.permission.granted"
    AUTHZ_PERMISSION_DENIED = "authz.permission.denied"
    AUTHZ_ROLE_ASSIGNED = "authz.role.assigned"
    AUTHZ_ROLE_REVOKED = "authz.role.revoked"
    DATA_READ = "data.read"
    DATA_CREATE = "data.create"
    DATA_UPDATE = "data.update"
    DATA_DELETE = "data.delete"
    DATA_BULK_OPERATION = "data.bulk"
    DATA_SENSITIVE_ACCESS = "data.sensitive.access"
    DATA_EXPORT = "data.export"
    QUERY_BLOCKED_DEPTH = "query.blocked.depth"
    QUERY_BLOCKED_COMPLEXITY = "query.blocked.complexity"
    QUERY_BLOCKED_INTROSPECTION = "query.blocked.introspection"
    QUERY_VALIDATION_FAILED = "query.validation.failed"
    QUERY_INJECTION_ATTEMPT = "query.injection.attempt"
    RATE_LIMIT_EXCEEDED = "rate.limit.exceeded"
    RATE_LIMIT_WARNING = "rate.limit.warning"
    SYSTEM_ERROR = "system.error"
    SYSTEM_CONFIG_CHANGE = "system.config.change"
    SYSTEM_INTEGRITY_CHECKPOINT = "system.integrity.checkpoint"
    UI_ACTION = "ui.action"
    SECURITY_ALERT = "security.alert"
    # -- recorded with no code (CONTRACT part 2, issue 14): Django's signals, loggers and integrations --
    SECURITY_SUSPICIOUS_REQUEST = "security.suspicious.request"
    AUTH_PASSWORD_CHANGED = "auth.password.changed"
    AUTH_ACCOUNT_CREATED = "auth.account.created"
    AUTH_ACCOUNT_DELETED = "auth.account.deleted"
    AUTH_ACCOUNT_DISABLED = "auth.account.disabled"
    AUTH_ACCOUNT_ENABLED = "auth.account.enabled"
    AUTH_IMPERSONATION_STARTED = "auth.impersonation.started"
    AUTH_IMPERSONATION_ENDED = "auth.impersonation.ended"
    AUTH_LOGIN_LOCKED = "auth.login.locked"
    AUTH_LOGIN_UNLOCKED = "auth.login.unlocked"

    def __str__(self) -> str:
        return self.value

    @property
    def default_severity(self) -> Severity:
        """The severity used when ``emit`` is not given one."""
        return DEFAULT_SEVERITIES.get(self, Severity.INFO)


DEFAULT_SEVERITIES: dict[EventType, Severity] = {
    EventType.AUTH_LOGIN_FAILURE: Severity.WARNING,
    EventType.AUTH_TOKEN_REVOKED: Severity.INFO,
    EventType.AUTH_TOKEN_INVALID: Severity.WARNING,
    EventType.AUTH_MFA_FAILURE: Severity.WARNING,
    EventType.AUTHZ_PERMISSION_DENIED: Severity.WARNING,
    EventType.AUTHZ_ROLE_ASSIGNED: Severity.WARNING,
    EventType.AUTHZ_ROLE_REVOKED: Severity.WARNING,
    EventType.DATA_DELETE: Severity.WARNING,
    EventType.DATA_BULK_OPERATION: Severity.WARNING,
    EventType.DATA_SENSITIVE_ACCESS: Severity.WARNING,
    EventType.DATA_EXPORT: Severity.WARNING,
    EventType.QUERY_BLOCKED_DEPTH: Severity.WARNING,
    EventType.QUERY_BLOCKED_COMPLEXITY: Severity.WARNING,
    EventType.QUERY_BLOCKED_INTROSPECTION: Severity.WARNING,
    EventType.QUERY_VALIDATION_FAILED: Severity.INFO,
    EventType.QUERY_INJECTION_ATTEMPT: Severity.ERROR,
    EventType.RATE_LIMIT_EXCEEDED: Severity.WARNING,
    EventType.RATE_LIMIT_WARNING: Severity.INFO,
    EventType.SYSTEM_ERROR: Severity.ERROR,
    EventType.SYSTEM_CONFIG_CHANGE: Severity.WARNING,
    # Routine, but warning so that the default AUDIT_WEBHOOK_MIN_SEVERITY ships it off the host:
    # a checkpoint is worth something only where the database's owner cannot reach it.
    EventType.SYSTEM_INTEGRITY_CHECKPOINT: Severity.WARNING,
    EventType.SECURITY_ALERT: Severity.CRITICAL,
    # -- recorded with no code (issue 14) --
    EventType.SECURITY_SUSPICIOUS_REQUEST: Severity.WARNING,
    EventType.AUTH_PASSWORD_CHANGED: Severity.WARNING,
    EventType.AUTH_ACCOUNT_CREATED: Severity.INFO,
    EventType.AUTH_ACCOUNT_DELETED: Severity.WARNING,
    EventType.AUTH_ACCOUNT_DISABLED: Severity.WARNING,
    EventType.AUTH_ACCOUNT_ENABLED: Severity.INFO,
    EventType.AUTH_IMPERSONATION_STARTED: Severity.WARNING,
    EventType.AUTH_IMPERSONATION_ENDED: Severity.INFO,
    EventType.AUTH_LOGIN_LOCKED: Severity.ERROR,
    EventType.AUTH_LOGIN_UNLOCKED: Severity.WARNING,
}


def coerce_severity(value: Severity | str | None, default: Severity) -> Severity:
    """Turn a ``Severity`` or its string value into a ``Severity``."""
    if value is None:
        return default
    if isinstance(value, Severity):
        return value
    try:
        return Severity(str(value).lower())
    except ValueError:
        return default


_SUCCESS = Outcome.SUCCESS.value


#: Random bytes read from ``os.urandom`` at a time for event ids (10 per id). One ``urandom`` call per
#: id costs little itself but releases the GIL, handing it to the background writer in the middle of
#: ``emit``; one read per ~400 ids removes nearly all of those hand-overs.
_RANDOM_POOL_BYTES = 4096


class _RandomPool:
    """``os.urandom`` bytes handed out 10 at a time, under a lock (never the same bytes twice)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._offset = 0

    def take10(self) -> bytes:
        with self._lock:
            offset = self._offset
            if offset + 10 > len(self._pool):
                self._pool, offset = os.urandom(_RANDOM_POOL_BYTES), 0
            self._offset = offset + 10
            return self._pool[offset:offset + 10]

    def forget(self) -> None:
        """After ``fork()``: the child must not hand out the parent's remaining bytes (the same ids)."""
        self._lock = threading.Lock()
        self._pool, self._offset = b"", 0


_random_pool = _RandomPool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_random_pool.forget)


def _uuid7() -> uuid.UUID:
    # RFC 9562 section 5.7: 48-bit Unix time in ms, version 7, 12 + 62 random bits (from os.urandom,
    # a CSPRNG, as section 6.9 asks), variant 10.
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(_random_pool.take10(), "big")
    return uuid.UUID(int=value & ~(0xF000 << 64) & ~(0xC << 60) | (0x7000 << 64) | (0x8 << 60))


#: A new event id: a time-ordered UUID (version 7, the standard library's from Python 3.14).
#: Ids that grow with time append to the end of the unique ``event_id`` index instead of
#: landing on a random page of it, which keeps inserts cheap as the table grows.
new_event_id = getattr(uuid, "uuid7", _uuid7)


@dataclass
class SecurityEvent:
    """One audit event, already enriched and redacted, ready for the sinks.

    ``to_dict()`` is the stable wire form used by the file sink, the webhook
    and exports; ``additional_data`` is what the database row stores in its
    JSON column.
    """

    event_type: str
    timestamp: datetime
    severity: str
    outcome: str
    action: str = ""
    user_id: str | None = None
    username: str | None = None
    client_ip: str | None = None
    remote_addr: str | None = None
    user_agent: str = ""
    request_path: str = ""
    request_method: str = ""
    correlation_id: str | None = None
    session_id: str | None = None
    resource_type: str | None = None
    resource_name: str | None = None
    resource_id: str | None = None
    risk_score: float | None = None
    context: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    event_id: uuid.UUID = field(default_factory=new_event_id)

    @property
    def success(self) -> bool:
        return self.outcome == _SUCCESS

    @property
    def additional_data(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "action": self.action,
            "resource": {
                "type": self.resource_type,
                "name": self.resource_name,
                "id": self.resource_id,
            },
            "correlation_id": self.correlation_id,
            "risk_score": self.risk_score,
            "remote_addr": self.remote_addr,
            "context": self.context,
        }

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready primitives, with stable keys."""
        data = self.wire_fields()
        data["event_id"] = str(self.event_id)
        data["timestamp"] = self.timestamp.isoformat()
        return data

    def wire_fields(self) -> dict[str, Any]:
        """:meth:`to_dict` with ``event_id`` and ``timestamp`` left as ``UUID`` and ``datetime``.

        For encoders that write them exactly as ``str(uuid)`` and ``isoformat()`` do (orjson).
        """
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "timestamp": self.timestamp,
            "severity": self.severity,
            "outcome": self.outcome,
            "success": self.outcome == _SUCCESS,
            "action": self.action,
            "user_id": self.user_id,
            "username": self.username,
            "client_ip": self.client_ip,
            "remote_addr": self.remote_addr,
            "user_agent": self.user_agent,
            "request_path": self.request_path,
            "request_method": self.request_method,
            "correlation_id": self.correlation_id,
            "session_id": self.session_id,
            "resource": {
                "type": self.resource_type,
                "name": self.resource_name,
                "id": self.resource_id,
            },
            "risk_score": self.risk_score,
            "context": self.context,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SecurityEvent:
        """Rebuild an event from :meth:`to_dict` output (journal replay)."""
        resource = data.get("resource") or {}
        return cls(
            event_id=uuid.UUID(data["event_id"]),
            event_type=data["event_type"],
            timestamp=datetime.fromisoformat(data["timestamp"]),
            severity=data["severity"],
            outcome=data["outcome"],
            action=data.get("action") or "",
            user_id=data.get("user_id"),
            username=data.get("username"),
            client_ip=data.get("client_ip"),
            remote_addr=data.get("remote_addr"),
            user_agent=data.get("user_agent") or "",
            request_path=data.get("request_path") or "",
            request_method=data.get("request_method") or "",
            correlation_id=data.get("correlation_id"),
            session_id=data.get("session_id"),
            resource_type=resource.get("type"),
            resource_name=resource.get("name"),
            resource_id=resource.get("id"),
            risk_score=data.get("risk_score"),
            context=data.get("context") or {},
            error=data.get("error"),
        )
