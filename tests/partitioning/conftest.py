"""Partitioned audit table fixtures (PostgreSQL only): each test converts the shared test table and reverts it."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from rail_django.partitioning import premaker

TABLE = "rail_django_auditeventmodel"
PG_ONLY_REASON = "PostgreSQL feature: runs in the PostgreSQL pass"


def pytest_collection_modifyitems(config, items):
    if django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason=PG_ONLY_REASON)
    for item in items:
        if "tests/partitioning/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)


def assert_plain_table_as_migrated() -> None:
    """One plain table with its primary key, its two unique constraints and an identity id, as 0001-0004 make it."""
    assert relkind() == "r"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT contype, count(*) FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('p', 'u') "
            "GROUP BY 1 ORDER BY 1", [TABLE],
        )
        assert cursor.fetchall() == [("p", 1), ("u", 2)]
        cursor.execute("SELECT attidentity FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'id'", [TABLE])
        assert cursor.fetchone()[0] == "d"
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname ~ %s", [f"^{TABLE}_(p[0-9]{{4}}|default|legacy|ahead)"])
        assert cursor.fetchone()[0] == 0, "a partition was left behind"


def relkind(table: str = TABLE) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    return row[0] if row else None


def partitions_cmd(*args: str) -> str:
    out = io.StringIO()
    call_command("audit_management", "partitions", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def partitioning_on(settings):
    settings.AUDIT_PARTITIONING = {"interval": "day", "premake": 2}
    premaker.reset()
    yield settings.AUDIT_PARTITIONING
    premaker.reset()


@pytest.fixture
def partitioned_long_ago(settings):
    """Weekly partitions, converted 60 days ago: the writer premakes every week since, up to now."""
    settings.AUDIT_PARTITIONING = {"interval": "week", "premake": 1}
    premaker.reset()
    with time_machine.travel(timezone.now() - timedelta(days=60), tick=True):
        partitions_cmd("convert")
    yield
    premaker.reset()
    if relkind() == "p":
        partitions_cmd("revert")
    assert_plain_table_as_migrated()


@pytest.fixture
def partitioned(partitioning_on):
    """The test table converted to a partitioned one for the test, and back to one plain table after it."""
    assert relkind() == "r"
    partitions_cmd("convert")
    assert relkind() == "p"
    yield
    if relkind() == "p":
        partitions_cmd("revert")
    assert_plain_table_as_migrated()
