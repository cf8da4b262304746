"""Fixtures for the command tests: stored events inserted in bulk, as the database sink would."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from django.utils import timezone


def event_row(model, *, age: timedelta = timedelta(minutes=5), now: datetime | None = None, **fields):
    """An unsaved audit row ``age`` old; ``outcome`` and ``context`` go into ``additional_data``."""
    outcome = fields.pop("outcome", "success")
    context = fields.pop("context", {})
    values = {
        "event_id": uuid.uuid4(),
        "event_type": "data.read",
        "severity": "info",
        "timestamp": (now or timezone.now()) - age,
        "success": outcome == "success",
        "additional_data": {
            "outcome": outcome,
            "action": fields.pop("action", ""),
            "resource": fields.pop("resource", {"type": None, "name": None, "id": None}),
            "correlation_id": fields.get("correlation_id"),
            "risk_score": None,
            "remote_addr": fields.get("client_ip"),
            "context": context,
        },
    }
    values.update(fields)
    return model(**values)


@pytest.fixture
def insert(audit_model):
    """``insert(count, **fields)`` bulk-inserts ``count`` rows; returns them (with primary keys where supported)."""

    def insert(count: int = 1, batch_size: int = 5000, **fields):
        now = timezone.now()
        rows = [event_row(audit_model, now=now, **dict(fields)) for _ in range(count)]
        audit_model.objects.bulk_create(rows, batch_size=batch_size)
        return rows

    return insert
