"""``audit_management verify`` and ``replay``: the tamper-evidence chain and the journal."""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import CommandError
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware

from rail_django.conf import get_config
from rail_django.delivery.dispatcher import dispatcher
from rail_django.delivery.journal import journal_directory, replay_orphans
from rail_django.events.types import EventType, Outcome, Severity
from rail_django.integrity.chain import VerifyReport, integrity_key, seal_pending, verify_chain
from rail_django.sinks import DatabaseSink


def parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    value = parse_datetime(text)
    if value is None:
        raise CommandError(f"--since {text!r} is not an ISO 8601 date/time such as 2026-11-01T00:00:00")
    return make_aware(value) if is_naive(value) else value


def run_verify(since: str | None = None) -> VerifyReport:
    """Seal what is pending, then walk the chain; a failure is itself an alert."""
    if integrity_key() is None:
        raise CommandError("AUDIT_INTEGRITY_KEY is not set: there is no integrity chain to verify")
    start = parse_since(since)
    alias = get_config().database_alias
    seal_pending(alias)
    report = verify_chain(since=start, alias=alias)
    if not report.ok:
        from rail_django.security import security
        from rail_django.signals import security_alert

        problem = report.problem
        event = security.emit(
            EventType.SYSTEM_ERROR,
            outcome=Outcome.FAILURE,
            severity=Severity.CRITICAL,
            action="Audit integrity chain failed verification",
            context={"kind": problem.kind, "sequence": problem.sequence, "event_id": problem.event_id},
            error=problem.detail,
            resource_type="audit_chain",
        )
        security_alert.send_robust(
            sender=run_verify, event=event, rule="audit_chain_verification", key=problem.kind,
            count=1, window=None,
        )
    return report


def run_replay() -> int:
    """Store the events that stopped processes left in the journal directory."""
    config = get_config()
    if config.journal_dir is None:
        raise CommandError("AUDIT_JOURNAL_DIR is None: there is no journal to replay")
    if not config.store_in_database:
        raise CommandError("AUDIT_STORE_IN_DATABASE is False: there is nowhere to replay the journal to")
    dispatcher.flush()
    directory = journal_directory(config.journal_dir, config.database_alias)
    return replay_orphans(directory, DatabaseSink(config.database_alias).write, config.batch_size)
