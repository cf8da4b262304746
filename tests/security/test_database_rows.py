"""The database sink's hand-made rows for the stock model (SQLite INSERT, PostgreSQL COPY) against the ORM."""

import copy
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection

from rail_django.integrity.sealing import seal_pending
from rail_django.integrity.verify import verify_chain
from rail_django.security import EventType, security
from rail_django.sinks import DatabaseSink
from rail_django.sinks.database import PlainInsert, event_to_row

pytestmark = pytest.mark.django_db(transaction=True)


def _events() -> list:
    """Events covering what the row builder converts: microseconds 0 and not, non-ASCII JSON, None, no user."""
    whole_second = security.build(
        EventType.DATA_READ, action="Zoë 北京 read", context={"name": "Zoë 北京", "n": 2**62, "ratio": 0.1, "l": [1, None]},
        resource_id=7, risk_score=0.5,
    )
    whole_second.timestamp = datetime(2026, 5, 1, 11, 59, 0, 0, tzinfo=timezone.utc)
    fractional = security.build(EventType.AUTH_LOGIN_FAILURE, outcome="failure", error="bad \u2028 password",
                                context={"emoji": "\U0001f600", "nested": {"deep": [{"x": "é"}]}})
    fractional.timestamp = datetime(2026, 5, 1, 0, 0, 0, 123456, tzinfo=timezone.utc)
    empty = security.build("custom.event")
    empty.user_id = empty.username = empty.client_ip = empty.correlation_id = empty.session_id = None
    named = security.build(EventType.DATA_UPDATE, user=None)
    named.user_id, named.username, named.client_ip = "42", "ü" * 200, "2001:db8::1"  # username cut to 150
    named.session_id = "s" * 40
    return [whole_second, fractional, empty, named]


def _twins(events: list) -> list:
    twins = []
    for event in events:
        twin = copy.copy(event)
        twin.event_id = uuid.uuid4()
        twin.__dict__.pop("_json_line", None)
        twins.append(twin)
    return twins


def _stored_text(audit_model, event_id) -> dict:
    columns = [f.column for f in audit_model._meta.concrete_fields if f.column not in ("id", "event_id")]
    text = "CHAR" if connection.vendor == "mysql" else "TEXT"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(f'CAST({c} AS {text})' for c in columns)} "  # noqa: S608 (names from _meta)
            f"FROM {audit_model._meta.db_table} WHERE event_id = %s",
            [event_id.hex if connection.vendor != "postgresql" else event_id],
        )
        return dict(zip(columns, cursor.fetchone(), strict=True))


def _spy_fast_rows(monkeypatch) -> list:
    """Count the rows the fast builder makes (it must be the path taken on SQLite and PostgreSQL)."""
    made: list = []
    original = PlainInsert.rows

    def rows(self, events, conn, copy=False):
        result = original(self, events, conn, copy)
        if self.fast_row is not None and (copy or conn.vendor == "sqlite"):
            made.extend(result)
        return result

    monkeypatch.setattr(PlainInsert, "rows", rows)
    return made


def test_fast_rows_read_back_exactly_as_the_orms_rows(audit_model, monkeypatch):
    events = _events()
    twins = _twins(events)
    made = _spy_fast_rows(monkeypatch)
    DatabaseSink("default").write(events)
    audit_model.objects.bulk_create([event_to_row(audit_model, twin) for twin in twins])
    if connection.vendor in ("sqlite", "postgresql"):
        assert len(made) == len(events)  # the hand-made rows were the ones written
    fields = [f.attname for f in audit_model._meta.concrete_fields if f.attname not in ("id", "event_id")]
    for event, twin in zip(events, twins, strict=True):
        ours = audit_model.objects.get(event_id=event.event_id)
        orm = audit_model.objects.get(event_id=twin.event_id)
        for name in fields:
            assert getattr(ours, name) == getattr(orm, name), name
        assert ours.timestamp == event.timestamp
        ours_text, orm_text = _stored_text(audit_model, event.event_id), _stored_text(audit_model, twin.event_id)
        for column, value in ours_text.items():
            if column == "additional_data":
                assert json.loads(value) == json.loads(orm_text[column])  # same JSON, spacing may differ
            else:
                assert value == orm_text[column], column
    assert audit_model.objects.get(event_id=events[3].event_id).username == "ü" * 150
    assert audit_model.objects.get(event_id=events[0].event_id).additional_data["context"]["n"] == 2**62


def test_fast_rows_are_stored_in_the_form_the_integrity_check_accepts(audit_model, settings):
    settings.AUDIT_INTEGRITY_KEY = "fast-rows-key-0123456789abcdef"
    events = _events()
    DatabaseSink("default").write(events)
    assert seal_pending() == len(events)
    report = verify_chain()  # includes the stored-form check of timestamps, JSON, UUIDs and booleans
    assert report.ok, report.problem
    assert report.checked == len(events)


def test_values_outside_the_fast_cases_go_through_the_fields(audit_model):
    """A timestamp in another zone, a non-str id, JSON orjson refuses: the field's conversion, same stored value."""
    odd = security.build(EventType.DATA_READ, context={"big": "x"})
    odd.timestamp = datetime(2026, 5, 1, 13, 59, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    odd.user_id = 42  # an int where text is expected
    odd.context = {"big": 2**70}  # beyond orjson's 64 bits
    plain = security.build(EventType.DATA_READ)
    DatabaseSink("default").write([odd, plain])
    stored = audit_model.objects.get(event_id=odd.event_id)
    assert stored.timestamp == datetime(2026, 5, 1, 11, 59, 0, 5, tzinfo=timezone.utc)
    assert stored.user_id == "42"
    assert stored.additional_data["context"]["big"] == 2**70
    if connection.vendor == "sqlite":
        assert _stored_text(audit_model, odd.event_id)["timestamp"] == "2026-05-01 11:59:00.000005"


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite rows hold datetimes as text in the connection's zone")
def test_a_database_time_zone_turns_the_sqlite_fast_rows_off(audit_model):
    events = [security.build(EventType.DATA_READ), security.build(EventType.DATA_READ)]
    insert = PlainInsert(audit_model, connection.vendor)
    assert insert.fast_row is not None
    assert insert.rows(events, connection) == [insert.fast_row(event, connection) for event in events]
    assert insert.rows(events, connection)[0][0] == events[0].event_id.hex

    class Paris:  # a connection whose datetimes Django stores in Paris time
        vendor = "sqlite"
        settings_dict = {**connection.settings_dict, "TIME_ZONE": "Europe/Paris"}

    asked = []
    insert.params = lambda event, conn: asked.append(conn) or ["converted"]
    assert insert.rows(events, Paris) == [["converted"], ["converted"]]
    assert asked == [Paris, Paris]


def test_the_fast_rows_are_only_for_the_stock_model():
    from tests.security.test_delivery import StampedAuditEvent

    assert PlainInsert(StampedAuditEvent, "sqlite").fast_row is None
    assert PlainInsert(StampedAuditEvent, "postgresql").fast_row is None


@pytest.mark.skipif(connection.vendor not in ("sqlite", "postgresql"), reason="no fast rows on this database")
def test_use_tz_turned_off_at_run_time_turns_the_fast_rows_off(audit_model, settings):
    insert = PlainInsert(audit_model, connection.vendor)  # made while USE_TZ is on
    events = [security.build(EventType.DATA_READ, context={"é": 1}), security.build(EventType.DATA_READ)]
    assert insert.rows(events, connection, copy=True) == [insert.fast_row(event, connection) for event in events]
    settings.USE_TZ = False
    insert.params = lambda event, conn: ["converted", event.event_id]  # the fields' own conversion
    assert insert.rows(events, connection, copy=True) == [["converted", event.event_id] for event in events]
