"""`audit_management verify` and `replay`, through call_command and a real command line."""

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from rail_django.delivery.journal import journal_directory
from rail_django.security import EventType, security
from rail_django.sinks.base import event_json

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def keyed(settings):
    settings.AUDIT_INTEGRITY_KEY = "verify-command-key-0123456789"
    settings.AUDIT_STORE_IN_FILE = False


def test_verify_reports_an_intact_chain(keyed, audit_model):
    for n in range(5):
        security.emit(EventType.DATA_READ, context={"n": n})
    out = StringIO()
    call_command("audit_management", "verify", stdout=out)
    assert "Integrity chain OK: 5 events verified from sequence 1 to 5; 0 not sealed yet." in out.getvalue()


def test_verify_fails_with_the_first_tampered_row_and_raises_an_alert(keyed, audit_model):
    for n in range(5):
        security.emit(EventType.DATA_READ, context={"n": n})
    call_command("audit_management", "verify", stdout=StringIO())
    with connection.cursor() as cursor:
        cursor.execute("UPDATE rail_django_auditeventmodel SET success = %s WHERE chain_sequence = 3", [False])
    with pytest.raises(CommandError, match=r"Integrity check FAILED: changed at sequence 3") as failure:
        call_command("audit_management", "verify", stdout=StringIO())
    assert failure.value.returncode == 1
    alert = audit_model.objects.get(event_type="system.error")
    assert alert.additional_data["context"]["kind"] == "changed" and alert.severity == "critical"


def test_verify_without_a_key_and_bad_since_are_one_line_errors(settings, keyed):
    with pytest.raises(CommandError, match="--since 'yesterday' is not an ISO 8601"):
        call_command("audit_management", "verify", "--since", "yesterday")
    settings.AUDIT_INTEGRITY_KEY = None
    with pytest.raises(CommandError, match="AUDIT_INTEGRITY_KEY is not set"):
        call_command("audit_management", "verify")


def test_replay_stores_a_dead_process_journal_once(settings, audit_model, tmp_path):
    settings.AUDIT_JOURNAL_DIR = tmp_path / "journal"
    journal = journal_directory(tmp_path / "journal", "default")  # this database's folder
    journal.mkdir(parents=True)
    events = [security.build(EventType.DATA_READ, context={"n": n}) for n in range(3)]
    (journal / "journal-999999-1.jsonl").write_text("".join(event_json(e) + "\n" for e in events))
    out = StringIO()
    call_command("audit_management", "replay", stdout=out)
    assert "Replayed 3 events" in out.getvalue()
    assert set(audit_model.objects.values_list("event_id", flat=True)) == {e.event_id for e in events}
    call_command("audit_management", "replay", stdout=out)  # nothing left: idempotent
    assert audit_model.objects.count() == 3


@pytest.mark.sqlite_only
def test_verify_errors_are_one_line_with_a_non_zero_exit_on_the_command_line():
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "django", "audit_management", "verify"],
        cwd=root, capture_output=True, text=True,
        env={"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "CommandError: AUDIT_INTEGRITY_KEY is not set: there is no integrity chain to verify"


def test_replay_never_feeds_one_database_another_ones_journal(settings, audit_model, tmp_path):
    settings.AUDIT_JOURNAL_DIR = tmp_path / "journal"
    elsewhere = tmp_path / "journal" / "0123456789abcdef"  # the folder of some other database
    elsewhere.mkdir(parents=True)
    event = security.build(EventType.DATA_READ)
    (elsewhere / "journal-999999-1.jsonl").write_text(event_json(event) + "\n")
    call_command("audit_management", "replay", stdout=StringIO())
    assert audit_model.objects.count() == 0
    assert (elsewhere / "journal-999999-1.jsonl").exists()
