"""``audit_management verify``, ``checkpoint`` and ``replay``: the tamper-evidence chain and the journal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware

from rail_django.conf import get_config
from rail_django.delivery.dispatcher import dispatcher
from rail_django.delivery.journal import journal_directory, replay_orphans
from rail_django.events.types import EventType, Outcome, Severity
from rail_django.integrity.checkpoints import Checkpoint, make_checkpoint, publish, read_checkpoints
from rail_django.integrity.sealing import seal_pending
from rail_django.integrity.signing import Signer, configured_signer, load_public_key
from rail_django.integrity.state import HEAD, load_state, state_fault
from rail_django.integrity.verify import VerifyReport, verify_chain
from rail_django.sinks import DatabaseSink

NO_KEY = "AUDIT_INTEGRITY_KEY is not set: there is no integrity chain to verify"


def parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    value = parse_datetime(text)
    if value is None:
        raise CommandError(f"--since {text!r} is not an ISO 8601 date/time such as 2026-11-01T00:00:00")
    return make_aware(value) if is_naive(value) else value


def _signer(public_key: str | None) -> Signer:
    try:
        signer = load_public_key(public_key) if public_key else configured_signer()
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from exc
    if signer is None:
        raise CommandError(NO_KEY)
    return signer


def run_verify(
    since: str | None = None, checkpoints: Sequence[str] | None = None, public_key: str | None = None
) -> VerifyReport:
    """Seal what is pending (when this process holds the key), then check the chain; a failure is itself an alert.

    ``checkpoints``: JSON-lines files (audit log files or copies) whose
    checkpoints the table must reach and agree with. ``public_key``: an Ed25519
    public key PEM file; verification then needs no secret and changes nothing.
    """
    signer = _signer(public_key)
    start = parse_since(since)
    scan = None
    # Checkpoints are read before the head: one published meanwhile is then never ahead of the head read.
    if checkpoints:
        try:
            scan = read_checkpoints(checkpoints)
        except OSError as exc:
            raise CommandError(f"--checkpoints: cannot read {exc.filename!r}: {exc.strerror}") from exc
    alias = get_config().database_alias
    if public_key is None:
        seal_pending(alias, publish=False)
    report = verify_chain(since=start, alias=alias, signer=signer, checkpoints=scan)
    if not report.ok:
        _raise_alert(report)
    return report


def _raise_alert(report: VerifyReport) -> None:
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
        sender=run_verify, event=event, rule="audit_chain_verification", key=problem.kind, count=1, window=None,
    )


@dataclass
class PublishedCheckpoint:
    checkpoint: Checkpoint
    signer: str
    sinks: list[str]


def run_checkpoint() -> PublishedCheckpoint:
    """Seal what is pending, then publish a signed checkpoint of the head to every sink and wait for it."""
    signer = _signer(None)
    if not signer.can_sign:
        raise CommandError("AUDIT_INTEGRITY_SIGNING_KEY holds no private key: cannot sign a checkpoint")
    config = get_config()
    if not config.enabled:
        raise CommandError("GRAPHQL_ENABLE_AUDIT_LOGGING is False: a checkpoint would be recorded nowhere")
    seal_pending(config.database_alias, publish=False)
    head = load_state(HEAD, signer, config.database_alias)
    fault = state_fault(head, signer)
    if fault is not None:
        raise CommandError(f"Refusing to vouch for the chain head: {fault}")
    checkpoint = make_checkpoint(signer, head.sequence, head.hash)
    publish(checkpoint)
    dispatcher.flush()
    return PublishedCheckpoint(checkpoint, signer.describe(), _sinks_taking(EventType.SYSTEM_INTEGRITY_CHECKPOINT.default_severity))


def _sinks_taking(severity: Severity) -> list[str]:
    """Names of the sinks an event of ``severity`` reaches (the webhook has a minimum severity)."""
    return [s.name for s in dispatcher.sinks() if getattr(s, "min_rank", -1) <= severity.rank]


def run_replay() -> int:
    """Store the events that stopped processes left in the journal directory."""
    config = get_config()
    if config.journal_dir is None:
        raise CommandError("AUDIT_JOURNAL_DIR is None: there is no journal to replay")
    if config.stream is not None:  # AUDIT_STREAM: the journal holds events for the stream; they go there
        from rail_django.sinks.stream import StreamSink, stream_journal_directory

        dispatcher.flush()
        sink = StreamSink(config.stream)
        try:
            return replay_orphans(stream_journal_directory(config.journal_dir, config.stream), sink.write,
                                  config.batch_size)
        finally:
            sink.close()
    if not config.store_in_database:
        raise CommandError("AUDIT_STORE_IN_DATABASE is False: there is nowhere to replay the journal to")
    dispatcher.flush()
    directory = journal_directory(config.journal_dir, config.database_alias)
    return replay_orphans(directory, DatabaseSink(config.database_alias, config.partitioning).write, config.batch_size)
