"""AUDIT_PARTITIONING's checks: interval (E090), premake (E091), a database other than PostgreSQL (E092)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings


def _report(value) -> str:
    with override_settings(AUDIT_PARTITIONING=value):
        with pytest.raises(SystemCheckError) as raised:
            call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    return str(raised.value)


@pytest.mark.parametrize(
    ("value", "check_id"),
    [
        ({"interval": "hour"}, "rail_django.E090"),
        ("monthly", "rail_django.E090"),
        ({"interval": "day", "extra": 1}, "rail_django.E090"),
        ({"interval": "day", "premake": 0}, "rail_django.E091"),
        ({"interval": "day", "premake": True}, "rail_django.E091"),
    ],
)
def test_bad_values_fail_check(value, check_id):
    assert check_id in _report(value)


def test_a_database_other_than_postgresql_is_refused(settings):
    settings.DATABASES = {**settings.DATABASES, "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    settings.AUDIT_DATABASE_ALIAS = "other"
    report = _report({"interval": "day", "premake": 4})
    assert "rail_django.E092" in report and "partitioning needs PostgreSQL" in report


def test_a_good_value_on_postgresql_passes(settings):
    settings.AUDIT_PARTITIONING = {"interval": "week", "premake": 2}
    call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
