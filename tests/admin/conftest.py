"""Fixtures for the admin and dashboard tests: stored events with known facts, and logged-in staff."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.contrib.auth.models import Permission
from django.test import Client, override_settings
from django.utils import timezone

#: The instant the dashboard tests freeze time at (a Wednesday, 14:37:20 UTC).
NOW = dt.datetime(2025, 3, 12, 14, 37, 20, tzinfo=dt.timezone.utc)


def make_event(model, *, minutes_ago: float = 1, now: dt.datetime | None = None, **fields):
    """One stored event ``minutes_ago`` before ``now``; ``outcome`` and ``context`` go into additional_data."""
    outcome = fields.pop("outcome", "success")
    context = fields.pop("context", {})
    action = fields.pop("action", "")
    fields.setdefault("event_type", "data.read")
    fields.setdefault("severity", "info")
    fields.setdefault("correlation_id", uuid.uuid4().hex)
    timestamp = (now or timezone.now()) - dt.timedelta(minutes=minutes_ago)
    return model(
        timestamp=timestamp,
        success=outcome == "success",
        additional_data={
            "outcome": outcome,
            "action": action,
            "resource": {"type": None, "name": None, "id": None},
            "correlation_id": fields["correlation_id"],
            "risk_score": None,
            "remote_addr": fields.get("client_ip"),
            "context": context,
        },
        **fields,
    )


def store(model, *events):
    model.objects.bulk_create(list(events))
    return list(model.objects.order_by("id"))


def logged_in_client(user) -> Client:
    """A client logged in as ``user`` without recording the login itself."""
    client = Client()
    with override_settings(GRAPHQL_ENABLE_AUDIT_LOGGING=False):
        client.force_login(user)
    return client


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "root-password-123")


@pytest.fixture
def su_client(superuser):
    return logged_in_client(superuser)


@pytest.fixture
def auditor(django_user_model):
    """Staff, not superuser, allowed to view audit events and nothing else."""
    user = django_user_model.objects.create_user("auditor", password="auditor-password-123", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_auditeventmodel", content_type__app_label="rail_django"))
    return user


@pytest.fixture
def plain_staff(django_user_model):
    return django_user_model.objects.create_user("staffer", password="staffer-password-123", is_staff=True)
