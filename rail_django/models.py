"""``AuditEventModel``: one stored audit event, append-only through the ORM."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

_retention_delete_allowed: ContextVar[bool] = ContextVar("rail_django_retention_delete", default=False)
_sealing_allowed: ContextVar[bool] = ContextVar("rail_django_sealing", default=False)
_CHAIN_FIELDS = frozenset({"chain_sequence", "chain_hash"})


class AppendOnlyError(Exception):
    """Raised when code tries to change or delete a stored audit event."""


@contextmanager
def allow_retention_delete() -> Iterator[None]:
    """The retention cleanup's pass past the append-only guard (and nothing else's)."""
    token = _retention_delete_allowed.set(True)
    try:
        yield
    finally:
        _retention_delete_allowed.reset(token)


@contextmanager
def allow_sealing() -> Iterator[None]:
    """The integrity sealer's pass to set ``chain_sequence`` / ``chain_hash`` (and nothing else)."""
    token = _sealing_allowed.set(True)
    try:
        yield
    finally:
        _sealing_allowed.reset(token)


def _refuse(what: str) -> None:
    raise AppendOnlyError(
        f"Audit events are append-only: {what} is refused. "
        "Rows leave only through 'manage.py audit_management cleanup'."
    )


class AuditEventQuerySet(models.QuerySet):
    def delete(self) -> tuple[int, dict[str, int]]:
        if not _retention_delete_allowed.get():
            _refuse("QuerySet.delete()")
        return super().delete()

    delete.alters_data = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]

    def update(self, **kwargs: Any) -> int:
        if _sealing_allowed.get() and set(kwargs) <= _CHAIN_FIELDS:
            return super().update(**kwargs)
        _refuse("QuerySet.update()")
        return 0

    update.alters_data = True  # type: ignore[attr-defined]

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        if _sealing_allowed.get() and set(fields) <= _CHAIN_FIELDS:
            return super().bulk_update(objs, fields, batch_size=batch_size)
        _refuse("QuerySet.bulk_update()")
        return 0


class AuditEventModel(models.Model):
    """A security or activity event, as recorded by ``security.emit``."""

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event_type = models.CharField(max_length=64)
    severity = models.CharField(max_length=16, default="info")
    user_id = models.CharField(max_length=255, null=True, blank=True)
    username = models.CharField(max_length=150, null=True, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(blank=True, default="")
    timestamp = models.DateTimeField(default=timezone.now)
    request_path = models.TextField(blank=True, default="")
    request_method = models.CharField(max_length=16, blank=True, default="")
    additional_data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    success = models.BooleanField(default=True)
    error_message = models.TextField(null=True, blank=True)
    correlation_id = models.CharField(max_length=64, null=True, blank=True)
    session_id = models.CharField(max_length=64, null=True, blank=True)
    # Tamper evidence (AUDIT_INTEGRITY_KEY): set by the sealer after insert.
    chain_sequence = models.BigIntegerField(null=True, blank=True, unique=True, editable=False)
    chain_hash = models.CharField(max_length=64, null=True, blank=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        app_label = "rail_django"
        db_table = "rail_django_auditeventmodel"
        verbose_name = "audit event"
        verbose_name_plural = "audit events"
        indexes = [
            models.Index(fields=["timestamp"], name="rail_audit_ts_idx"),
            models.Index(fields=["event_type", "timestamp"], name="rail_audit_type_ts_idx"),
            models.Index(fields=["user_id", "timestamp"], name="rail_audit_user_ts_idx"),
            models.Index(fields=["client_ip", "timestamp"], name="rail_audit_ip_ts_idx"),
            models.Index(fields=["correlation_id"], name="rail_audit_corr_idx"),
            models.Index(fields=["success", "timestamp"], name="rail_audit_success_ts_idx"),
            # For the admin's severity filter and username search (0002); on PostgreSQL 0002 also adds
            # partial indexes for the outcome filter and attempted-username lookups.
            models.Index(fields=["severity", "timestamp"], name="rail_audit_sev_ts_idx"),
            models.Index(fields=["username", "timestamp"], name="rail_audit_username_ts_idx"),
        ]

    def __str__(self) -> str:
        who = self.username or self.user_id or "anonymous"
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.event_type} {who}"

    @property
    def outcome(self) -> str:
        return (self.additional_data or {}).get("outcome") or ("success" if self.success else "failure")

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            _refuse("save() on a stored event")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        if not _retention_delete_allowed.get():
            _refuse("delete()")
        return super().delete(*args, **kwargs)


class AuditChainState(models.Model):
    """The integrity chain's head (last sealed row) and anchor (last row removed by retention).

    ``signature`` signs the name, sequence and hash (HMAC-SHA256 with
    ``AUDIT_INTEGRITY_KEY``, or Ed25519 with ``AUDIT_INTEGRITY_SIGNING_KEY``),
    so a head cannot be forged without the key. A saved head can still be
    written back: only checkpoints kept outside the database reveal that
    (see :mod:`rail_django.integrity`).
    """

    name = models.CharField(max_length=16, primary_key=True)
    sequence = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64)
    signature = models.CharField(max_length=128)  # "ed25519:" + base64 of 64 bytes is 96 characters
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "rail_django"
        db_table = "rail_django_auditchainstate"
        verbose_name = "audit chain state"


def get_audit_event_model() -> type[models.Model]:
    """The audit model named by ``AUDIT_EVENT_MODEL`` (default ``"rail_django.AuditEventModel"``)."""
    from rail_django.conf import get_config

    name = get_config().event_model
    try:
        return apps.get_model(name, require_ready=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"AUDIT_EVENT_MODEL must be of the form 'app_label.ModelName', not {name!r}") from exc
    except LookupError as exc:
        raise ImproperlyConfigured(f"AUDIT_EVENT_MODEL refers to model {name!r}, which is not installed") from exc
