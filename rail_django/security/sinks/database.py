"""Database sink: events become ``AuditEventModel`` rows, inserted in batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.utils import timezone

from rail_django.security.events import SecurityEvent


def event_to_row(model: type[Any], event: SecurityEvent) -> Any:
    """The one mapping from an event to an audit-model instance."""
    timestamp = event.timestamp
    if not settings.USE_TZ and timezone.is_aware(timestamp):
        timestamp = timezone.make_naive(timestamp)
    return model(
        event_id=event.event_id,
        event_type=event.event_type[:64],
        severity=event.severity,
        user_id=event.user_id,
        username=(event.username or "")[:150] or None,
        client_ip=event.client_ip,
        user_agent=event.user_agent,
        timestamp=timestamp,
        request_path=event.request_path,
        request_method=event.request_method,
        additional_data=event.additional_data,
        success=event.success,
        error_message=event.error,
        correlation_id=event.correlation_id,
        session_id=event.session_id,
    )


class DatabaseSink:
    """Inserts events with one ``bulk_create`` per batch, idempotent on ``event_id``."""

    name = "database"

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias

    def write(self, events: Sequence[SecurityEvent]) -> None:
        from rail_django.extensions.audit.models import get_audit_event_model

        model = get_audit_event_model()
        rows = [event_to_row(model, event) for event in events]
        # ignore_conflicts: a replayed or retried batch must not duplicate rows.
        model.objects.using(self.alias).bulk_create(rows, ignore_conflicts=True)

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass
