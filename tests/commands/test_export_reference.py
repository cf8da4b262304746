"""``export`` (JSON, JSON lines, CSV): its output is byte for byte the reference.

The reference is built here, independently of the export module, from the ORM's values (what
``values_list()`` returns) and the documented formats: a JSON object per row with ISO 8601 timestamps
and UUID text (``json.dumps(..., ensure_ascii=False, default=str)``), and CSV cells with ``true``/
``false``, empty for NULL, sorted-key JSON for structures and a ``'`` before formula characters.
"""

from __future__ import annotations

import csv
import io
import json
import random
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, connections, models
from django.utils import timezone

from rail_django.models import allow_sealing
from rail_django.operations import export as export_module

pytestmark = pytest.mark.django_db(transaction=True)

VENDOR = connection.vendor
#: Text that spreadsheets run, text JSON escapes, text outside the BMP, text SQL and CSV quote.
WEIRD = [
    "zoë", "日本語", "emoji 😀", '=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "\t=1", "\r=1", 'comma, "quote"',
    "line\nbreak", "cr\rlf\r\n", "ctrl \x01\x1f\x7f", "sep \u2028 \u2029", "back\\slash \\u0041", "</script>", "",
    " padded ", "\ufeffbom", "x" * 150, "NaN", "null", "-0", "1e5", "it's",
]
FLOATS = [0.1, 1e-07, 1e-05, 1e16, 1.5, -0.0, 100.0, 2.5e-300, 1.7976931348623157e308, 123456789.123, 0.0001, 0.00012]


def _json_value(rng: random.Random, depth: int = 0):
    pick = rng.randrange(9 if depth < 3 else 5)
    if pick == 0:
        return rng.choice(WEIRD)
    if pick == 1:
        return rng.choice(FLOATS)
    if pick == 2:
        return rng.choice([0, -1, 10**20, 2**63, 42])
    if pick == 3:
        return rng.choice([True, False, None])
    if pick == 4:
        return rng.choice(["plain", "order"])
    if pick in (5, 6):
        keys = ["b", "a", "Z", "é", "two words", "日本", "id", "name"]
        return {rng.choice(keys): _json_value(rng, depth + 1) for _ in range(rng.randrange(5))}
    return [_json_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def _varied_rows(model, count: int = 400, seed: int = 7) -> list:
    """Unsaved rows covering every column: NULLs, unicode, nested JSON, floats, equal timestamps."""
    rng = random.Random(seed)
    base = timezone.now() - timedelta(days=3)
    rows = []
    for n in range(count):
        stamp = base + timedelta(seconds=n * 13, microseconds=rng.choice([0, 1, 123456, 999999]))
        if n % 40 < 4:  # runs of equal timestamps: the (timestamp, pk) order must hold
            stamp = base + timedelta(seconds=(n // 40) * 13 * 40)
        outcome = rng.choice(["success", "failure", "denied"])
        data = {
            "outcome": outcome, "action": rng.choice(WEIRD + ["Viewed order"]),
            "resource": {"type": rng.choice(["order", None]), "name": rng.choice([None, "zoë"]), "id": str(n)},
            "correlation_id": uuid.uuid4().hex, "risk_score": rng.choice([None, 0.5, 75.0, 1e-07, 3]),
            "remote_addr": rng.choice([None, "10.0.0.1"]), "context": {"page": n},
        }
        if n % 3 == 0:
            data["context"] = _json_value(rng)
        if n % 37 == 0:  # json.dumps writes both as "1": the text repeats a key where it is kept as written
            data["context"] = {1: "int key", "1": "str key", "nested": {True: 1, "true": 2}}
        if n % 29 == 0:
            data = rng.choice([{}, [1, "two", {"three": 3.0}], "just text é", 12.5, False, _json_value(rng) or {}])

        def maybe(value):
            return rng.choice([None, value, value])

        rows.append(model(
            event_id=uuid.uuid4(), event_type=rng.choice(["data.read", "auth.login.failure", "security.alert", "x.y"]),
            severity=rng.choice(["info", "warning", "critical"]), user_id=maybe(str(rng.randrange(1000))),
            username=maybe(rng.choice(WEIRD)[:150]), client_ip=rng.choice([None, "203.0.113.9", "2001:db8::1"]),
            user_agent=rng.choice(WEIRD), timestamp=stamp, request_path=rng.choice(WEIRD),
            request_method=rng.choice(["GET", "POST", ""]), additional_data=data, success=outcome == "success",
            error_message=maybe(rng.choice(WEIRD)), correlation_id=maybe(uuid.uuid4().hex),
            session_id=maybe("s" * 32),
        ))
    return rows


# -- the reference -------------------------------------------------------------------------------


def _fields(model) -> list[models.Field]:
    return list(model._meta.concrete_fields)


def _reference_rows(model, queryset=None):
    queryset = queryset if queryset is not None else model.objects.all()
    names = [f.attname for f in _fields(model)]
    return names, list(queryset.exclude(event_type="data.export").order_by("timestamp", "pk").values_list(*names))


def _reference_record(model, values) -> dict:
    record = {}
    for field, value in zip(_fields(model), values, strict=True):
        if value is not None and isinstance(field, (models.DateTimeField, models.DateField, models.TimeField)):
            value = value.isoformat()
        elif value is not None and isinstance(field, models.UUIDField):
            value = str(value)
        record[field.attname] = value
    return record


def _reference_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    elif isinstance(value, (datetime, date, time)):
        text = value.isoformat()
    else:
        text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def reference(model, fmt: str, queryset=None) -> str:
    names, rows = _reference_rows(model, queryset)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(names)
        writer.writerows([_reference_cell(value) for value in row] for row in rows)
        return out.getvalue()
    lines = [json.dumps(_reference_record(model, row), ensure_ascii=False, default=str) for row in rows]
    if fmt == "jsonl":
        return "".join(line + "\n" for line in lines)
    return "[" + "".join(("\n" if i == 0 else ",\n") + line for i, line in enumerate(lines)) + ("\n]\n" if lines else "]\n")


def export_text(*args: str, tmp_path=None) -> str:
    """The export's output, through a file when ``tmp_path`` is given, else through stdout."""
    if tmp_path is None:
        out = io.StringIO()
        call_command("audit_management", "export", *args, stdout=out)
        return out.getvalue()
    target = tmp_path / "export.out"
    call_command("audit_management", "export", *args, "--output", str(target), stdout=io.StringIO())
    with target.open(encoding="utf-8", newline="") as handle:
        return handle.read()


def _drop_export_events(model) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE event_type = 'data.export'")


# -- stored rows no rail-django writer produces ----------------------------------------------------

#: JSON text as other tools may have stored it (SQLite and MariaDB keep the text as given).
ODD_JSON_TEXTS = [
    '{"a":1,"b":[1,2]}', '{"a": 1.50}', '{"a": "\\u00e9\\u00E9"}', '{"a": "\\/"}', '{"a": 1E5}', '{ "a": 1}',
    '{"a": 1, "a": 2}', '{"k": {"a": 1, "b": 2, "a": 3}}', '{"x": "\\ud83d\\ude00"}', '{"c": "\\u0001\\u001f\\u000a"}',
    '{"c": "\\u0041"}', '{"n": -0}', '{"n": 0.0000001}', '[]', '{}', '"s"', '1', 'null', 'true', '{"n": 1e400}',
    '{"k": "\\b\\f\\n\\r\\t"}', '{"big": 123456789012345678901234567890}', '{"f": 1.0e-7}', '{"t": "é"}',
    '{": a": 1, ": a": 2}', '{"a": ": x", "b": 1}', '{"a\\"b": 1, "a\\"b": 2}', '{"": 1, "": 2}',
]


def _insert_raw_json(model) -> None:
    table = model._meta.db_table
    start = timezone.now() - timedelta(days=4)
    with connection.cursor() as cursor:
        for i, text in enumerate(ODD_JSON_TEXTS):
            stamp = start + timedelta(seconds=i, microseconds=(123000 if i % 2 else 0))
            stamp = str(stamp.replace(tzinfo=None))  # UTC, as Django stores it on SQLite and MySQL
            cursor.execute(
                f"INSERT INTO {table} (event_id, event_type, severity, user_agent, timestamp, request_path, "
                f"request_method, additional_data, success) VALUES (%s, 'raw.json', 'info', '', %s, '', '', %s, %s)",
                [uuid.uuid4().hex, stamp, text, True],
            )


def _insert_odd_sqlite_rows(model) -> None:
    """Timestamps and UUIDs stored in forms Django does not write (parsed by Django's converters)."""
    table = model._meta.db_table
    day = (timezone.now() - timedelta(days=5)).date().isoformat()
    odd = [
        (f"{day} 10:00:00.5", "A" * 32), (f"{day} 10:00:01.000000", uuid.uuid4().hex),
        (f"{day}T10:00:02.123456", uuid.uuid4().hex), (f"{day} 10:00:03+02:00", uuid.uuid4().hex),
        (f"{day} 10:00:04.123456Z", uuid.uuid4().hex), (f"{day} 10:00:05", str(uuid.uuid4())),
    ]
    with connection.cursor() as cursor:
        for stamp, event_id in odd:
            cursor.execute(
                f"INSERT INTO {table} (event_id, event_type, severity, user_agent, timestamp, request_path, "
                f"request_method, additional_data, success) VALUES (%s, 'raw.stamp', 'info', '', %s, '', '', '{{}}', 1)",
                [event_id, stamp],
            )


@pytest.fixture
def varied_table(audit_model):
    audit_model.objects.bulk_create(_varied_rows(audit_model), batch_size=200)
    ids = list(audit_model.objects.order_by("pk").values_list("pk", flat=True))
    with allow_sealing():
        for i, pk in enumerate(ids[::7]):
            sequence = (i * 1000 + 1) * (-1 if i % 2 else 1)  # negative numbers are neutralised in CSV too
            audit_model.objects.filter(pk=pk).update(chain_sequence=sequence, chain_hash="%064x" % (i * 7919))
    if VENDOR != "postgresql":  # jsonb only stores (and gives back) its own normal form
        _insert_raw_json(audit_model)
    if VENDOR == "sqlite":
        _insert_odd_sqlite_rows(audit_model)
    return audit_model


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
@pytest.mark.parametrize("chunk_size", ["2000", "7", "1"])
def test_output_is_byte_for_byte_the_reference(varied_table, fmt, chunk_size, tmp_path):
    expected = reference(varied_table, fmt)
    assert export_text("--format", fmt, "--chunk-size", chunk_size, tmp_path=tmp_path) == expected
    _drop_export_events(varied_table)
    assert export_text("--format", fmt, "--chunk-size", chunk_size) == expected  # stdout


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_filtered_output_is_the_reference_of_the_same_rows(varied_table, fmt):
    since = timezone.now() - timedelta(days=3, hours=-1)
    until = since + timedelta(minutes=40)
    args = ["--since", since.isoformat(), "--until", until.isoformat(), "--event-type", "auth.*",
            "--event-type", "x.y"]
    rows = varied_table.objects.filter(timestamp__gte=since, timestamp__lt=until,
                                       event_type__in=["auth.login.failure", "x.y"])
    expected = reference(varied_table, fmt, rows)
    assert expected.count("\n") > 10
    assert export_text("--format", fmt, *args) == expected


@pytest.mark.sqlite_only  # jsonb and MariaDB's JSON_VALID refuse a lone surrogate
def test_a_stored_lone_surrogate_is_written_as_before(audit_model, tmp_path):
    _insert_raw_json(audit_model)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {audit_model._meta.db_table} SET additional_data = %s WHERE additional_data = %s",
                       ['{"x": "\\ud800"}', "[]"])
    assert export_text("--format", "jsonl") == reference(audit_model, "jsonl")
    assert '"x": "\ud800"' in reference(audit_model, "jsonl")
    # A file is UTF-8: the export fails, and leaves nothing behind, as it always did.
    with pytest.raises(UnicodeEncodeError):
        export_text("--format", "jsonl", tmp_path=tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- reading -------------------------------------------------------------------------------------


def test_a_failed_read_ends_its_transaction(audit_model, insert, monkeypatch, tmp_path):
    insert(30)

    def broken(self, rows):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_module.Writer, "write", broken)
    with pytest.raises(RuntimeError):
        export_text("--format", "jsonl", "--chunk-size", "10", tmp_path=tmp_path)
    assert not connections["default"].in_atomic_block
    assert audit_model.objects.count() == 30


# -- a swapped AUDIT_EVENT_MODEL with more columns and its own column names ------------------------


class ShoutingTextField(models.TextField):
    """A field with its own from_db_value: the export must use it."""

    def from_db_value(self, value, expression, connection):
        return value.upper() if isinstance(value, str) else value


class PlainDateTimeSubclass(models.DateTimeField):
    """A DateTimeField subclass (not the stock class): always Django's conversion."""


class CustomAuditEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(default=uuid.uuid4, unique=True)
    event_type = models.CharField(max_length=64)
    severity = models.CharField(max_length=16, default="info")
    user_id = models.CharField(max_length=255, null=True)
    username = models.CharField(max_length=150, null=True)
    client_ip = models.GenericIPAddressField(null=True)
    user_agent = models.TextField(blank=True, default="")
    tenant = models.CharField(max_length=32, default="acme", db_column="tenant_code")
    timestamp = models.DateTimeField(default=timezone.now, db_column="occurred_at")
    request_path = models.TextField(blank=True, default="")
    request_method = models.CharField(max_length=16, blank=True, default="")
    additional_data = models.JSONField(default=dict, encoder=DjangoJSONEncoder, db_column="payload")
    success = models.BooleanField(default=True)
    error_message = models.TextField(null=True)
    correlation_id = models.CharField(max_length=64, null=True)
    session_id = models.CharField(max_length=64, null=True)
    amount = models.DecimalField(max_digits=10, decimal_places=2, null=True)
    day = models.DateField(null=True)
    at = models.TimeField(null=True)
    ratio = models.FloatField(null=True)
    flag = models.BooleanField(null=True)
    reference = models.UUIDField(null=True)
    note = ShoutingTextField(null=True)
    seen = PlainDateTimeSubclass(null=True)
    waited = models.DurationField(null=True)
    counter = models.PositiveBigIntegerField(null=True)

    class Meta:
        app_label = "testapp"
        db_table = "commands_custom_audit_event"


@pytest.fixture
def custom_model(transactional_db, settings):
    # The test database may have it already (migrate --run-syncdb creates tables of apps without migrations).
    created = CustomAuditEvent._meta.db_table not in connection.introspection.table_names()
    if created:
        with connection.schema_editor() as editor:
            editor.create_model(CustomAuditEvent)
    settings.AUDIT_EVENT_MODEL = "testapp.CustomAuditEvent"
    yield CustomAuditEvent
    if created:
        with connection.schema_editor() as editor:
            editor.delete_model(CustomAuditEvent)


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_a_custom_audit_model_is_exported_column_for_column(custom_model, fmt):
    rng = random.Random(11)
    rows = _varied_rows(custom_model, count=120, seed=3)
    for n, row in enumerate(rows):
        if n % 4:
            row.amount = Decimal(rng.choice(["0.10", "-3.50", "12345678.99"]))
            row.day = date(2025, 1 + n % 12, 1 + n % 28)
            row.at = time(n % 24, n % 60, n % 60, rng.choice([0, 5]))
            row.ratio = rng.choice([0.1, 1e-07, -2.5])
            row.flag = rng.choice([True, False, None])
            row.reference = uuid.uuid4()
            row.note = WEIRD[n % len(WEIRD)]
            row.seen = timezone.now() - timedelta(minutes=n)
            row.waited = timedelta(seconds=n, microseconds=n)
            row.counter = n * 10**12
            row.tenant = rng.choice(["acme", "-x", "zoë"])
    custom_model.objects.bulk_create(rows)
    expected = reference(custom_model, fmt)
    assert "ZOË" in expected  # the custom field's from_db_value ran
    assert export_text("--format", fmt, "--chunk-size", "13") == expected
