"""``audit_management export``: every format, filters, streaming memory, CSV injection, bad flags."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tracemalloc
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from tests.commands.conftest import event_row

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def export(*args: str) -> str:
    out = io.StringIO()
    call_command("audit_management", "export", *args, stdout=out)
    return out.getvalue()


def _fields(model):
    return [f.attname for f in model._meta.concrete_fields]


def _stored(model):
    """The stored rows as the export must reproduce them, oldest first."""
    rows = []
    for row in model.objects.exclude(event_type="data.export").order_by("timestamp", "pk").values(*_fields(model)):
        row["timestamp"] = row["timestamp"].isoformat()
        row["event_id"] = str(row["event_id"])
        rows.append(row)
    return rows


@pytest.fixture
def varied(audit_model):
    """Rows exercising every column: unicode, nested JSON, nulls, IPv6, failures."""
    rows = [
        event_row(audit_model, age=timedelta(hours=3), event_type="auth.login.failure", severity="warning",
                  outcome="failure", client_ip="203.0.113.9", user_agent="Mozilla/5.0 (X11)", request_path="/login/",
                  request_method="POST", error_message="Invalid credentials", correlation_id="c-1",
                  context={"username_attempted": "zoë", "nested": {"list": [1, 2.5, None, True], "quote": 'a "b", c'}}),
        event_row(audit_model, age=timedelta(hours=2), event_type="auth.login.success", user_id="42", username="alice",
                  client_ip="2001:db8::1", session_id="s" * 32, context={}),
        event_row(audit_model, age=timedelta(hours=1), event_type="data.update", user_id="7", username="bob",
                  resource={"type": "order", "name": "Order", "id": "5"}, action="Updated order\nline two",
                  context={"operation_name": "updateOrder", "emoji": "✓"}),
    ]
    audit_model.objects.bulk_create(rows)
    return rows


def test_json_export_parses_back_to_the_stored_rows(audit_model, varied, tmp_path):
    target = tmp_path / "audit.json"
    message = export("--format", "json", "--output", str(target))
    assert message.strip() == f"Exported 3 events as json to {target}"
    assert json.loads(target.read_text(encoding="utf-8")) == _stored(audit_model)


def test_jsonl_export_to_stdout_parses_back_line_by_line(audit_model, varied):
    lines = export("--format", "jsonl").splitlines()
    assert [json.loads(line) for line in lines] == _stored(audit_model)
    again = export("--format", "jsonl", "--output", "-").splitlines()
    assert again[:-1] == lines  # plus the first export's own data.export event
    assert json.loads(again[-1])["event_type"] == "data.export"


def _from_csv(model, text):
    """Rows read back from CSV, typed by the model: "" is None for nullable columns."""
    fields = {f.attname: f for f in model._meta.concrete_fields}
    integers = {"AutoField", "BigAutoField", "IntegerField", "BigIntegerField", "PositiveIntegerField"}
    rows = []
    for record in csv.DictReader(io.StringIO(text)):
        row = {}
        for name, cell in record.items():
            kind = fields[name].get_internal_type()
            if cell == "" and fields[name].null:
                row[name] = None
            elif kind == "BooleanField":
                row[name] = {"true": True, "false": False}[cell]
            elif kind == "JSONField":
                row[name] = json.loads(cell)
            elif kind in integers:
                row[name] = int(cell)
            else:
                row[name] = cell
        rows.append(row)
    return rows


def test_csv_export_has_every_column_and_parses_back(audit_model, varied, tmp_path):
    target = tmp_path / "audit.csv"
    export("--format", "csv", "--output", str(target))
    with target.open(encoding="utf-8", newline="") as handle:
        text = handle.read()
    assert text.splitlines()[0].split(",") == _fields(audit_model)
    assert _from_csv(audit_model, text) == _stored(audit_model)


def test_csv_always_has_a_header_and_json_an_array(audit_model):
    none = ["--event-type", "auth.*"]  # no such rows (each run records a data.export event)
    assert export("--format", "csv", *none) == ",".join(_fields(audit_model)) + "\r\n"
    assert json.loads(export("--format", "json", *none)) == []
    assert export("--format", "jsonl", *none) == ""


@pytest.mark.parametrize("payload", ["=HYPERLINK(\"http://evil\",\"x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1"])
def test_csv_cells_that_spreadsheets_would_evaluate_are_neutralised(audit_model, insert, payload):
    insert(username=payload, user_agent=payload, request_path=payload, error_message=payload, outcome="failure")
    [record] = list(csv.DictReader(io.StringIO(export("--format", "csv"))))
    for column in ("username", "user_agent", "request_path", "error_message"):
        assert record[column] == "'" + payload
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in record.values())


def test_filters_by_days_range_and_event_type(audit_model, insert):
    insert(event_type="auth.login.failure", age=timedelta(days=40), outcome="failure")
    insert(event_type="auth.login.success", age=timedelta(days=10))
    insert(event_type="data.read", age=timedelta(days=2))
    insert(event_type="auth.logout", age=timedelta(hours=1))

    def types(*args):
        return [json.loads(line)["event_type"] for line in export("--format", "jsonl", *args).splitlines()]

    assert types("--days", "30") == ["auth.login.success", "data.read", "auth.logout"]
    since = (timezone.now() - timedelta(days=20)).date().isoformat()
    until = (timezone.now() - timedelta(days=1)).isoformat(timespec="seconds")
    assert types("--since", since, "--until", until) == ["auth.login.success", "data.read"]
    assert types("--event-type", "auth.*") == ["auth.login.failure", "auth.login.success", "auth.logout"]
    assert types("--event-type", "data.read", "--event-type", "auth.logout") == ["data.read", "auth.logout"]


def test_export_records_who_exported_what(audit_model, insert, tmp_path):
    insert(3)
    target = tmp_path / "out.jsonl"
    export("--format", "jsonl", "--days", "7", "--event-type", "data.read", "--output", str(target))
    event = audit_model.objects.get(event_type="data.export")
    context = event.additional_data["context"]
    assert context["format"] == "jsonl" and context["rows"] == 3
    assert context["output"] == str(target.resolve())
    assert context["filters"] == {"days": 7, "since": None, "until": None, "event_types": ["data.read"]}
    assert context["invoked_by"]["os_user"] and context["invoked_by"]["host"]
    assert event.severity == "warning" and event.correlation_id
    assert "data.export" not in target.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "xml"], "invalid choice: 'xml'"),
        (["--days", "-3"], "'-3' is not a whole number >= 1"),
        (["--days", "0"], "'0' is not a whole number >= 1"),
        (["--chunk-size", "0"], "'0' is not a whole number >= 1"),
        (["--days", "3", "--since", "2026-01-01"], "use either --days or --since/--until"),
        (["--since", "yesterday"], "--since 'yesterday' is not an ISO 8601 date"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "must be before --until"),
        (["--output", "/nonexistent-dir/x.json"], "cannot write --output '/nonexistent-dir/x.json'"),
    ],
)
def test_bad_flags_fail_with_one_line_and_change_nothing(audit_model, insert, args, message):
    insert(2)
    with pytest.raises(CommandError) as caught:
        export(*args)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not audit_model.objects.filter(event_type="data.export").exists()


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "ocsf"])
def test_a_failed_export_leaves_an_existing_file_untouched(audit_model, insert, tmp_path, monkeypatch, fmt):
    insert(5)
    target = tmp_path / "audit.json"
    target.write_text("previous export")
    from rail_django.operations import export as export_module

    original = export_module.Writer.write

    def broken(self, rows):
        original(self, rows)  # the first rows reach the temporary file, then the disk is full
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_module.Writer, "write", broken)
    with pytest.raises(RuntimeError):
        export("--format", fmt, "--output", str(target), "--chunk-size", "2")
    assert target.read_text() == "previous export"
    assert list(tmp_path.iterdir()) == [target]  # no partial file left behind


def test_output_that_is_a_directory_is_refused(tmp_path):
    with pytest.raises(CommandError, match="is a directory"):
        export("--output", str(tmp_path))


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("args", "code", "start"),
    [
        (["audit_management", "export", "--format", "xml"], 2, "manage.py audit_management export: error: argument --format"),
        (["audit_management", "export", "--days", "-1"], 2, "manage.py audit_management export: error: argument --days"),
        (["audit_management", "explode"], 2, "manage.py audit_management: error: argument {export,cleanup,summary,verify,checkpoint,replay,lockout"),
        (["audit_management", "export", "--output", "/nonexistent-dir/a.json"], 1, "CommandError: cannot write --output"),
    ],
)
def test_bad_flags_on_the_command_line_print_one_line(args, code, start):
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from django.core.management import execute_from_command_line; "
         "execute_from_command_line(['manage.py', *sys.argv[1:]])", *args],
        cwd=ROOT, env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == code
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(start), result.stderr


@pytest.mark.slow
def test_export_of_100000_rows_streams_with_flat_memory(audit_model, insert, tmp_path):
    count = 100_000
    insert(count, client_ip="198.51.100.20", user_agent="Mozilla/5.0 " + "x" * 200,
           context={"operation_name": "listOrders", "variables": {"page": 3, "filter": "open"}})
    target = tmp_path / "big.jsonl"
    tracemalloc.start()
    try:
        export("--format", "jsonl", "--output", str(target), "--chunk-size", "1000")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with target.open(encoding="utf-8") as handle:
        lines = sum(1 for _ in handle)
    assert lines == count
    # The rows take well over 100 MB as Python objects; streaming keeps a chunk at a time.
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_rows_are_written_oldest_first_with_full_timestamps(audit_model, insert):
    insert(event_type="b", age=timedelta(seconds=1, microseconds=250))
    insert(event_type="a", age=timedelta(days=1, microseconds=123))
    records = [json.loads(line) for line in export("--format", "jsonl").splitlines()]
    assert [r["event_type"] for r in records] == ["a", "b"]
    stamps = [datetime.fromisoformat(r["timestamp"]) for r in records]
    assert [s for s in stamps] == [row.timestamp for row in audit_model.objects.exclude(event_type="data.export").order_by("timestamp")]
    uuid.UUID(records[0]["event_id"])


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "ocsf"])
def test_an_export_file_is_readable_by_its_owner_only(audit_model, varied, tmp_path, fmt):
    """Review finding C1: exported audit data gets mode 0600, like the journal, whatever the umask allows."""
    target = tmp_path / f"audit.{fmt}"
    previous = os.umask(0o022)
    try:
        export("--format", fmt, "--output", str(target))
        assert target.stat().st_mode & 0o777 == 0o600
        target.chmod(0o644)  # an earlier export someone made readable: replaced by an owner-only file
        export("--format", fmt, "--output", str(target))
        assert target.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(previous)
    assert len(target.read_text(encoding="utf-8").splitlines()) >= 3
