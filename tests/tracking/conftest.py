"""Fixtures for the change-tracking tests: real commits (transactional tests), and the events they record."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Max

from rail_django.security import security


class Trail:
    """The change events (``data.*``) stored after the last :meth:`mark`."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.mark()

    def mark(self) -> None:
        self.after = self.model.objects.aggregate(m=Max("id"))["m"] or 0

    def events(self, event_type: str | None = None, resource_type: str | None = None) -> list[Any]:
        security.flush(timeout=10)  # events the writer thread holds (SQLite inside atomic(), async delivery)
        rows = self.model.objects.filter(id__gt=self.after, event_type__startswith="data.").order_by("id")
        if event_type:
            rows = rows.filter(event_type=event_type)
        if resource_type:
            rows = rows.filter(additional_data__resource__type=resource_type)
        return list(rows)

    def one(self, event_type: str | None = None, resource_type: str | None = None) -> Any:
        found = self.events(event_type, resource_type)
        assert len(found) == 1, [(e.event_type, e.additional_data) for e in found]
        return found[0]


def context(row: Any) -> dict[str, Any]:
    return row.additional_data["context"]


def resource(row: Any) -> dict[str, Any]:
    return row.additional_data["resource"]


@pytest.fixture
def trail(transactional_db, audit_model) -> Trail:
    return Trail(audit_model)
