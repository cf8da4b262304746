"""AUDIT_PARTITIONING on PostgreSQL: convert without rewrite, revert, premake, strays, drop, cleanup, uniqueness."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rail_django import partitioning as parts
from rail_django.events.types import SecurityEvent
from rail_django.operations import cleanup as cleanup_module
from rail_django.operations import partitions as ops
from rail_django.security import EventType, security
from rail_django.sinks.database import DatabaseSink
from tests.commands.conftest import event_row
from tests.partitioning.conftest import TABLE, partitions_cmd, relkind

pytestmark = pytest.mark.django_db(transaction=True)


def _filenode(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relfilenode FROM pg_class WHERE oid = to_regclass(%s)", [table])
        return cursor.fetchone()[0]


def _where(event_id) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {TABLE} WHERE event_id = %s", [event_id])
        return cursor.fetchone()[0]


def _event(when: datetime, event_id=None) -> SecurityEvent:
    extra = {"event_id": event_id} if event_id is not None else {}
    return SecurityEvent(event_type="data.read", timestamp=when, severity="info", outcome="success", **extra)


def test_convert_attaches_the_table_unrewritten_and_revert_restores_it(partitioning_on, audit_model):
    old = [event_row(audit_model, age=timedelta(days=d)) for d in (400, 40, 1)]
    ahead = event_row(audit_model, age=-timedelta(days=90))  # a clock far ahead
    audit_model.objects.bulk_create([*old, ahead])
    file_before = _filenode(TABLE)
    out = partitions_cmd("convert")
    assert "becomes partition rail_django_auditeventmodel_legacy" in out
    assert relkind() == "p" and relkind(TABLE + "_legacy") == "r"
    assert _filenode(TABLE + "_legacy") == file_before  # the very same file: attached, not rewritten
    assert {_where(row.event_id) for row in old} == {TABLE + "_legacy"}
    assert _where(ahead.event_id) == TABLE + "_default"  # set aside, then inserted through the partitioned table
    # The model's index names now belong to the partitioned table (later migrations refer to them).
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass", [TABLE])
        names = {row[0] for row in cursor.fetchall()}
    assert {index.name for index in audit_model._meta.indexes} <= names
    # New rows get fresh ids past the old ones, through the partitioned table.
    security.emit(EventType.DATA_READ)
    newest = audit_model.objects.order_by("-id").first()
    assert newest.id > max(row.id for row in audit_model.objects.filter(event_id__in=[r.event_id for r in old]))

    status = partitions_cmd("status")
    assert "MINVALUE .." in status and "_default  DEFAULT" in status and "1 rows in the default partition." in status

    out = partitions_cmd("revert")
    assert "one plain table again" in out
    assert relkind() == "r" and relkind(TABLE + "_legacy") is None
    assert _filenode(TABLE) == file_before
    assert audit_model.objects.count() == 5
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass", [TABLE])
        names = {row[0] for row in cursor.fetchall()}
    assert {index.name for index in audit_model._meta.indexes} <= names
    security.emit(EventType.DATA_READ)  # the identity continues past every copied id
    assert audit_model.objects.count() == 6


def test_convert_twice_and_revert_of_a_plain_table_are_one_line_errors(partitioned):
    with pytest.raises(CommandError, match="already partitioned"):
        partitions_cmd("convert")
    partitions_cmd("revert")
    with pytest.raises(CommandError, match="is not partitioned"):
        partitions_cmd("revert")


def test_commands_need_the_setting(settings):
    settings.AUDIT_PARTITIONING = None
    with pytest.raises(CommandError, match="AUDIT_PARTITIONING is not set"):
        partitions_cmd("premake")


def test_premake_creates_partitions_ahead_and_status_lists_them(partitioned):
    names = [p.name for p in ops.status()]
    today = parts.floor(datetime.now(UTC), "day")
    assert names[0] == TABLE + "_legacy" and names[-1] == TABLE + "_default"
    # The legacy partition ends after today; premake 2 covers at least two more days past it.
    covered = max(p.upper for p in ops.status() if p.upper)
    assert covered >= today + timedelta(days=3)
    far = datetime.now(UTC) + timedelta(days=10)
    created = ops.premake(until=far)
    assert parts.partition_name(TABLE, parts.floor(far, "day"), "day") in created
    assert ops.premake(until=far) == []  # idempotent


def test_the_writer_premakes_only_near_the_edge_and_strays_land_in_the_default(partitioned, audit_model):
    sink = DatabaseSink("default", {"interval": "day", "premake": 2})
    now = datetime.now(UTC)
    with CaptureQueriesContext(connection) as queries:
        sink.write([_event(now)])
    first = len(queries)
    with CaptureQueriesContext(connection) as queries:
        sink.write([_event(now)])
    assert len(queries) == 1, "a write far from the edge asks the catalogue nothing"
    assert first > 1  # the first write learnt the edge

    # Days later, near the edge of what was made: the writer makes the next partitions first; the row lands
    # in its own day's partition, not in the default one.
    with time_machine.travel(now + timedelta(days=3, hours=1), tick=True):
        ahead = datetime.now(UTC)
        sink.write([_event(ahead, uuid.uuid4())])
    row = audit_model.objects.get(timestamp=ahead)
    assert _where(row.event_id) == parts.partition_name(TABLE, parts.floor(ahead, "day"), "day")
    assert max(p.upper for p in ops.status() if p.upper) > ahead + timedelta(days=2)

    # A stray far beyond anything premade is stored all the same (default partition), and reported; the
    # writer does not make a month of partitions for it.
    stray = _event(now + timedelta(days=30))
    partitions_before = len(ops.status())
    sink.write([stray])
    assert len(ops.status()) == partitions_before
    assert _where(stray.event_id) == TABLE + "_default"
    assert "1 rows in the default partition." in partitions_cmd("status")
    out = StringIO()
    call_command("security_check", "--format", "json", stdout=out)
    [finding] = [f for f in json.loads(out.getvalue())["findings"] if f["id"] == "audit.partitions"]
    assert finding["severity"] == "warning" and "default partition" in finding["message"]

    # premake for that time moves the stray into its own partition (else ATTACH would be refused).
    ops.premake(until=stray.timestamp)
    assert _where(stray.event_id) == parts.partition_name(TABLE, parts.floor(stray.timestamp, "day"), "day")
    assert ops.default_rows() == 0


def test_a_replayed_event_is_stored_once(partitioned, audit_model):
    sink = DatabaseSink("default", {"interval": "day", "premake": 2})
    batch = [_event(datetime.now(UTC)) for _ in range(3)]
    sink.write(batch)
    sink.write(batch)  # COPY meets the (event_id, timestamp) index, falls back to ON CONFLICT DO NOTHING
    sink.write(batch[:1])  # one-row INSERT ... ON CONFLICT DO NOTHING
    assert audit_model.objects.filter(event_id__in=[e.event_id for e in batch]).count() == 3


def test_drop_archives_moves_the_anchor_and_verify_passes(settings, partitioned_long_ago, audit_model, tmp_path):
    settings.AUDIT_INTEGRITY_KEY = "partition-drop-key-0123456789"
    settings.AUDIT_STORE_IN_FILE = False
    sink = DatabaseSink("default", {"interval": "week", "premake": 1})
    now = datetime.now(UTC)
    old = [_event(now - timedelta(days=61))]  # the legacy partition (converted 60 days ago)
    weeks_ago = [_event(now - timedelta(days=45))]  # a weekly partition the writer premade
    kept = [_event(now - timedelta(days=1))]
    sink.write(old + weeks_ago + kept)
    assert _where(weeks_ago[0].event_id) == parts.partition_name(TABLE, parts.floor(weeks_ago[0].timestamp, "week"), "week")
    call_command("audit_management", "verify", stdout=StringIO())  # seals the three rows

    out = partitions_cmd("drop", "--older-than-days", "30", "--archive", str(tmp_path / "archive"))
    assert f"Dropped partition {TABLE}_legacy" in out
    legacy_archive = tmp_path / "archive" / f"{TABLE}_legacy.jsonl"
    archived = [json.loads(line) for line in legacy_archive.read_text().splitlines()]
    assert str(old[0].event_id) in {row["event_id"] for row in archived}
    assert (legacy_archive.stat().st_mode & 0o777) == 0o600
    assert not audit_model.objects.filter(event_id__in=[e.event_id for e in old + weeks_ago]).exists()
    assert audit_model.objects.filter(event_id=kept[0].event_id).exists()
    assert TABLE + "_legacy" not in [p.name for p in ops.status()]
    assert ops.default_rows() == 0

    report = StringIO()
    call_command("audit_management", "verify", stdout=report)
    assert "Integrity chain OK" in report.getvalue()
    recorded = audit_model.objects.filter(event_type="system.config.change").last()
    assert recorded.additional_data["context"]["operation"] == "audit_partition_drop"


def test_cleanup_drops_whole_partitions_and_deletes_only_in_the_straddling_one(partitioned, audit_model, monkeypatch):
    sink = DatabaseSink("default", {"interval": "day", "premake": 2})
    now = datetime.now(UTC)
    ops.premake(until=now + timedelta(days=12))
    day = parts.floor(now, "day") + timedelta(days=8)
    inside = [_event(day + timedelta(hours=h)) for h in (2, 20)]  # the cut falls at 12:00 that day
    whole = [_event(now + timedelta(days=3))]
    kept = [_event(now + timedelta(days=11))]
    sink.write(inside + whole + kept)
    cut = day + timedelta(hours=12)
    later = cut + timedelta(days=30)
    monkeypatch.setattr(cleanup_module, "now", lambda: later)

    out = StringIO()
    call_command("audit_management", "cleanup", "--days", "30", stdout=out)
    text = out.getvalue()
    assert "Dropped" in text and f"{TABLE}_legacy" in text
    assert parts.partition_name(TABLE, parts.floor(whole[0].timestamp, "day"), "day") in text
    assert "Deleted 1 events" in text  # the one row before the cut in the straddling partition
    remaining = set(audit_model.objects.values_list("event_id", flat=True))
    assert inside[1].event_id in remaining and kept[0].event_id in remaining
    assert inside[0].event_id not in remaining and whole[0].event_id not in remaining
    assert parts.partition_name(TABLE, day, "day") in [p.name for p in ops.status()]


def test_bad_flags_are_one_line_errors(partitioned):
    with pytest.raises(CommandError, match="older-than-days"):
        partitions_cmd("drop")
    with pytest.raises(CommandError):
        partitions_cmd("drop", "--older-than-days", "0")


def test_a_drop_that_cannot_lock_the_table_in_time_changes_nothing(partitioned_long_ago, settings):
    """A long reader holds the audit table: DETACH gives up after the lock timeout with one line; nothing dropped."""
    import psycopg

    db = settings.DATABASES["default"]
    before = [p.name for p in ops.status()]
    with psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=connection.settings_dict["NAME"]) as reader:
        reader.execute(f"SELECT count(*) FROM {TABLE}")  # its transaction stays open: ACCESS SHARE held
        with pytest.raises(CommandError, match=r"stayed locked past 2000 ms .* nothing was changed"):
            partitions_cmd("drop", "--older-than-days", "30")
        reader.rollback()
    assert [p.name for p in ops.status()] == before
    assert "Dropped partition" in partitions_cmd("drop", "--older-than-days", "30")
