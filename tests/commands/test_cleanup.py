"""``audit_management cleanup``: retention default, --days, dry run, batches, and its own audit event."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rail_django.models import AppendOnlyError

pytestmark = pytest.mark.django_db(transaction=True)


def cleanup(*args: str) -> str:
    out = io.StringIO()
    call_command("audit_management", "cleanup", *args, stdout=out)
    return out.getvalue().strip()


@pytest.fixture
def aged(insert):
    """One row each 10, 29, 31 and 100 days old."""
    for days, event_type in ((10, "a.10"), (29, "a.29"), (31, "a.31"), (100, "a.100")):
        insert(event_type=event_type, age=timedelta(days=days))


def _remaining(model):
    return sorted(model.objects.exclude(event_type="system.config.change").values_list("event_type", flat=True))


def test_cleanup_defaults_to_audit_retention_days(settings, audit_model, aged):
    settings.AUDIT_RETENTION_DAYS = 30
    message = cleanup()
    assert message.startswith("Deleted 2 events older than 30 days (before ")
    assert message.endswith(" in 1 batches.")
    assert _remaining(audit_model) == ["a.10", "a.29"]

    event = audit_model.objects.get(event_type="system.config.change")
    context = event.additional_data["context"]
    assert (context["deleted"], context["days"], context["batches"]) == (2, 30, 1)
    assert context["operation"] == "audit_retention_cleanup" and context["invoked_by"]["os_user"]
    assert event.severity == "warning"


def test_the_shipped_default_is_90_days(audit_model, aged):
    cleanup()
    assert _remaining(audit_model) == ["a.10", "a.29", "a.31"]


def test_days_flag_overrides_the_setting(settings, audit_model, aged):
    settings.AUDIT_RETENTION_DAYS = 30
    cleanup("--days", "50")
    assert _remaining(audit_model) == ["a.10", "a.29", "a.31"]


def test_dry_run_counts_and_changes_nothing(audit_model, aged):
    message = cleanup("--days", "20", "--dry-run")
    assert message.startswith("Dry run: 3 events older than 20 days")
    assert message.endswith("would be deleted; nothing was deleted.")
    assert audit_model.objects.count() == 4  # no row gone, no event recorded


def test_cleanup_deletes_in_batches(audit_model, insert):
    insert(25, age=timedelta(days=200))
    insert(3, age=timedelta(days=1))
    with CaptureQueriesContext(connection) as queries:
        message = cleanup("--batch-size", "10")
    assert message.endswith(" in 3 batches.") and message.startswith("Deleted 25 events")
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("DELETE")]
    assert len(deletes) == 3
    assert audit_model.objects.exclude(event_type="system.config.change").count() == 3


def test_nothing_to_delete_still_reports(audit_model, insert):
    insert(2, age=timedelta(days=1))
    assert cleanup().startswith("Deleted 0 events older than 90 days")
    assert audit_model.objects.filter(event_type="system.config.change").count() == 1


def test_cleanup_keeps_the_integrity_chain_verifiable(settings, audit_model, insert):
    from rail_django.integrity.chain import seal_pending, verify_chain

    settings.AUDIT_INTEGRITY_KEY = "cleanup-test-key-0123456789abcdef"
    insert(7, age=timedelta(days=120))
    insert(3, age=timedelta(days=1))
    assert seal_pending() == 10
    cleanup("--batch-size", "3")
    seal_pending()  # the cleanup's own event
    report = verify_chain()
    assert report.ok, report.problem
    assert report.anchor == 7 and report.checked == 4


def test_rows_stay_append_only_outside_cleanup(audit_model, aged):
    with pytest.raises(AppendOnlyError):
        audit_model.objects.all().delete()
    assert audit_model.objects.count() == 4


@pytest.mark.parametrize(
    "args",
    [["--days", "-1"], ["--days", "0"], ["--days", "ninety"], ["--batch-size", "0"], ["--batch-size", "-5"], ["--bogus"]],
)
def test_bad_flags_delete_nothing(audit_model, aged, args):
    with pytest.raises(CommandError) as caught:
        cleanup(*args)
    assert "\n" not in str(caught.value)
    assert audit_model.objects.count() == 4
