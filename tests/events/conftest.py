"""Fixtures of the no-code event tests: rows by type, and a fresh cache for the client budgets."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache

from rail_django.alerts import failed_logins


@pytest.fixture(autouse=True)
def _fresh_cache(settings):
    settings.AUDIT_ACCOUNT_EVENTS = True  # off in tests/settings.py for the other suites (the default is on)
    cache.clear()
    failed_logins.counter.reset()
    yield
    cache.clear()


@pytest.fixture
def rows(audit_model):
    """``rows("auth.password.changed")``: the stored rows of that type, oldest first."""

    def find(event_type: str | None = None):
        from rail_django.security import security

        security.flush()  # events emitted inside a transaction go through the background writer
        query = audit_model.objects.order_by("timestamp", "id")
        if event_type is not None:
            query = query.filter(event_type=event_type)
        return list(query)

    return find


def row_text(row) -> str:
    """Everything a row stores, as one string (to prove a secret is nowhere in it)."""
    fields = {f.name: getattr(row, f.name) for f in row._meta.concrete_fields}
    return json.dumps(fields, default=str)


def context_of(row) -> dict:
    return row.additional_data["context"]


@pytest.fixture
def rows_async(audit_model):
    """``await rows_async(event_type)`` from async tests."""
    from asgiref.sync import sync_to_async

    async def find(event_type: str):
        from rail_django.security import security

        await security.aflush()  # in async code events are always queued
        return await sync_to_async(lambda: list(audit_model.objects.filter(event_type=event_type).order_by("id")))()

    return find
