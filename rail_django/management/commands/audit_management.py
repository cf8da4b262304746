"""``manage.py audit_management export|cleanup|summary|verify|checkpoint|replay|lockout|partitions|ingest|drain``: operate on the stored audit events.

    python manage.py audit_management export --format json --days 30 --output audit.json
    python manage.py audit_management cleanup --days 180 --dry-run
    python manage.py audit_management summary --hours 24
    python manage.py audit_management verify [--since 2026-11-01T00:00:00] [--checkpoints audit.log] [--public-key PEM]
    python manage.py audit_management checkpoint
    python manage.py audit_management replay
    python manage.py audit_management lockout status|reset [--ip 203.0.113.9] [--username alice]
    python manage.py audit_management partitions status|premake|convert|revert
    python manage.py audit_management partitions drop --older-than-days 365 [--archive /srv/audit-archive]
    python manage.py audit_management ingest [--batch 1000] [--max-events N] [--idle-exit SECONDS]
    python manage.py audit_management drain [--once] [--batch-size 500] [--poll 0.2]

The work is in :mod:`rail_django.management.audit`; see ``docs/commands.md``.
"""

from __future__ import annotations

import json
from argparse import ArgumentTypeError
from typing import Any

from django.core.management.base import CommandError, CommandParser

from rail_django.management.base import AuditCommand, OneLineErrorParser, positive_int
from rail_django.operations.cleanup import DEFAULT_BATCH_SIZE, run_cleanup
from rail_django.operations.common import printable
from rail_django.operations.export import DEFAULT_CHUNK_SIZE, FORMATS, run_export
from rail_django.operations.integrity import run_checkpoint, run_replay, run_verify
from rail_django.operations.summary import build_summary, render_text


class Command(AuditCommand):
    help = "Export, clean up (retention), summarise and verify the stored audit events."

    def add_arguments(self, parser: CommandParser) -> None:
        verbs = parser.add_subparsers(
            dest="verb", required=True, metavar="{export,cleanup,summary,verify,checkpoint,replay,lockout,partitions,ingest,drain}", parser_class=OneLineErrorParser
        )

        export = verbs.add_parser("export", help="Stream events as json, jsonl, csv or ocsf.")
        export.add_argument("--format", choices=FORMATS, default="json", help="Output format (default json).")
        export.add_argument("--days", type=positive_int, help="Only events of the last N days.")
        export.add_argument("--since", help="Only events at or after this ISO 8601 date/time.")
        export.add_argument("--until", help="Only events before this ISO 8601 date/time.")
        export.add_argument(
            "--event-type", action="append", dest="event_types", metavar="TYPE",
            help="Only this event type (repeatable; 'auth.*' matches a prefix).",
        )
        export.add_argument("--output", help="File to write; '-' or absent writes to standard output.")
        export.add_argument(
            "--chunk-size", type=positive_int, default=DEFAULT_CHUNK_SIZE,
            help=f"Rows fetched per database round trip (default {DEFAULT_CHUNK_SIZE}).",
        )

        cleanup = verbs.add_parser("cleanup", help="Delete events older than the retention period.")
        cleanup.add_argument("--days", type=positive_int, help="Keep this many days (default AUDIT_RETENTION_DAYS).")
        cleanup.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")
        cleanup.add_argument(
            "--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE,
            help=f"Rows deleted per statement (default {DEFAULT_BATCH_SIZE}).",
        )

        summary = verbs.add_parser("summary", help="Counts of recent events.")
        summary.add_argument("--hours", type=positive_int, default=24, help="Look back this many hours (default 24).")
        summary.add_argument("--format", choices=("text", "json"), default="text", help="Output format (default text).")

        verify = verbs.add_parser("verify", help="Check the integrity chain (AUDIT_INTEGRITY_KEY); exit 1 on tampering.")
        verify.add_argument("--since", help="Start at the first event at or after this ISO 8601 date/time.")
        verify.add_argument(
            "--checkpoints", action="append", metavar="PATH",
            help="JSON-lines file (the audit log or a copy) whose signed checkpoints the table must reach "
            "(repeatable).",
        )
        verify.add_argument(
            "--public-key", metavar="PEMFILE",
            help="Verify with this Ed25519 public key (AUDIT_INTEGRITY_SIGNING_KEY's): no secret needed, nothing sealed.",
        )

        verbs.add_parser("checkpoint", help="Publish a signed checkpoint of the chain's head to every sink.")

        verbs.add_parser("replay", help="Store events that stopped processes left in the journal.")

        lockout = verbs.add_parser("lockout", help="List or lift login lockouts (AUDIT_LOCKOUT_ENABLED).")
        lockout.add_argument("action", choices=("status", "reset"), help="status: list the locks; reset: lift them.")
        lockout.add_argument("--ip", help="Only locks of this client IP address.")
        lockout.add_argument("--username", help="Only locks of this username (compared normalised).")

        # -- partitions (AUDIT_PARTITIONING, PostgreSQL; docs/scaling.md) --
        partitions = verbs.add_parser("partitions", help="PostgreSQL partitions of the audit table (AUDIT_PARTITIONING).")
        actions = partitions.add_subparsers(dest="partitions_action", required=True, parser_class=OneLineErrorParser,
                                            metavar="{status,premake,drop,convert,revert}")
        actions.add_parser("status", help="List partitions: range, estimated rows, size; rows in the default partition.")
        actions.add_parser("premake", help="Create the partitions of the next AUDIT_PARTITIONING['premake'] intervals.")
        drop = actions.add_parser("drop", help="Drop partitions whose rows are all older than N days.")
        drop.add_argument("--older-than-days", type=positive_int, required=True, metavar="N", help="Age in days.")
        drop.add_argument("--archive", metavar="DIR", help="First write each partition to DIR/<partition>.jsonl.")
        actions.add_parser("convert", help="Partition the existing table without rewriting it (it becomes the oldest partition).")
        actions.add_parser("revert", help="Back to one plain table (rows of newer partitions are copied into it).")
        # -- ingest (AUDIT_STREAM: rail_django.operations.ingest) --
        ingest = verbs.add_parser("ingest", help="Store the AUDIT_STREAM stream in the database (durable consumer).")
        ingest.add_argument("--batch", type=_batch_size, help="Messages per fetch and transaction (default AUDIT_STREAM['batch']).")
        ingest.add_argument("--max-events", type=positive_int, help="Stop after storing this many events.")
        ingest.add_argument("--idle-exit", type=_positive_seconds, metavar="SECONDS",
                            help="Stop after this many seconds without a message.")
        ingest.add_argument("--report-every", type=_positive_seconds, default=10.0, metavar="SECONDS",
                            help="Print throughput and lag this often (default 10).")

        # -- drain (AUDIT_DELIVERY = "drain": rail_django.operations.drain) --
        drain = verbs.add_parser("drain", help="Deliver the events this host's processes appended to the journal "
                                 '(AUDIT_DELIVERY = "drain"); one per host.')
        drain.add_argument("--once", action="store_true", help="Deliver what is there, then exit (tests, cron).")
        drain.add_argument("--batch-size", type=_batch_size, default=500, metavar="N",
                           help="Events per sink write and offset update (default 500, at most 10000).")
        drain.add_argument("--poll", type=_positive_seconds, default=0.2, metavar="SECONDS",
                           help="Pause between looks at the journal when it is idle (default 0.2).")
        drain.add_argument("--report-every", type=_positive_seconds, default=10.0, metavar="SECONDS",
                           help="Print throughput and lag this often (default 10).")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['verb']}")(options)

    def _export(self, options: dict[str, Any]) -> None:
        to_file = options["output"] not in (None, "-")
        show_progress = self.stderr.isatty()

        def progress(count: int) -> None:
            self.stderr.write(f"\rExported {count} events", ending="")

        count = run_export(
            fmt=options["format"],
            output=options["output"],
            stdout=_Raw(self.stdout),
            progress=progress if show_progress else None,
            days=options["days"],
            since=options["since"],
            until=options["until"],
            event_types=options["event_types"],
            chunk_size=options["chunk_size"],
        )
        if show_progress:
            self.stderr.write("")
        if to_file:
            self.stdout.write(f"Exported {count} events as {options['format']} to {printable(options['output'])}")

    def _cleanup(self, options: dict[str, Any]) -> None:
        result = run_cleanup(days=options["days"], batch_size=options["batch_size"], dry_run=options["dry_run"])
        when = f"older than {result.days} days (before {result.cutoff:%Y-%m-%d %H:%M:%S %Z})"
        if result.dry_run:
            self.stdout.write(f"Dry run: {result.matched} events {when} would be deleted; nothing was deleted.")
        else:
            self.stdout.write(f"Deleted {result.deleted} events {when} in {result.batches} batches.")
            if result.partitions:
                self.stdout.write(f"Dropped {len(result.partitions)} whole partitions: {', '.join(result.partitions)}.")

    def _summary(self, options: dict[str, Any]) -> None:
        summary = build_summary(hours=options["hours"])
        if options["format"] == "json":
            self.stdout.write(json.dumps(summary, indent=2))
        else:
            self.stdout.write(render_text(summary))


    def _verify(self, options: dict[str, Any]) -> None:
        report = run_verify(options["since"], options["checkpoints"], options["public_key"])
        if not report.ok:
            problem = report.problem
            where = f" at sequence {problem.sequence}" if problem.sequence is not None else ""
            event = f" (event {problem.event_id})" if problem.event_id else ""
            raise CommandError(printable(f"Integrity check FAILED: {problem.kind}{where}{event}: {problem.detail}"), returncode=1)
        self.stdout.write(
            f"Integrity chain OK: {report.checked} events verified from sequence {report.anchor + 1} "
            f"to {report.head}; {report.unsealed} not sealed yet."
        )
        if report.sealed_meanwhile:
            self.stdout.write(f"{report.sealed_meanwhile} events sealed while verifying were not checked.")
        self.stdout.write(_checkpoint_lines(report))

    def _checkpoint(self, options: dict[str, Any]) -> None:
        published = run_checkpoint()
        checkpoint = published.checkpoint
        self.stdout.write(
            f"Checkpoint published: sequence {checkpoint.sequence}, head {checkpoint.head}, at {checkpoint.at}, "
            f"signed with {published.signer}; sent to {', '.join(published.sinks) or 'no sink'}."
        )

    def _replay(self, options: dict[str, Any]) -> None:
        count = run_replay()
        self.stdout.write(f"Replayed {count} events from the journal of stopped processes.")


    def _ingest(self, options: dict[str, Any]) -> None:
        from rail_django.operations.ingest import IngestError, run_ingest

        try:
            run_ingest(batch=options["batch"], max_events=options["max_events"], idle_exit=options["idle_exit"],
                       report_every=options["report_every"], report=lambda line: self.stdout.write(line))
        except IngestError as exc:
            raise CommandError(f"ingest: {exc}") from exc

    def _drain(self, options: dict[str, Any]) -> None:
        from rail_django.operations.drain import DrainError, run_drain

        try:
            stats = run_drain(once=options["once"], batch_size=options["batch_size"], poll=options["poll"],
                              report_every=options["report_every"], report=lambda line: self.stdout.write(line))
        except DrainError as exc:
            raise CommandError(f"drain: {exc}") from exc
        if options["once"] and stats.refused_batches:  # cron: a sink refused; what is left waits in the journal
            raise CommandError("drain: a sink refused a batch; the rest waits in the journal for the next run.")

    def _lockout(self, options: dict[str, Any]) -> None:
        from rail_django.operations.lockout import describe_lock, lift_lockouts, list_lockouts

        ip, username = options["ip"], options["username"]
        try:
            if options["action"] == "status":
                locks = list_lockouts(ip, username)
                for lock in locks:
                    self.stdout.write(describe_lock(lock))
                self.stdout.write(f"{len(locks)} lockout(s) in force.")
                return
            lifted = lift_lockouts(ip, username, via="audit_management lockout reset")
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        for lock in lifted:
            self.stdout.write(f"Lifted: {describe_lock(lock)}")
        self.stdout.write(f"Reset {len(lifted)} lockout(s); failure counts cleared.")

    def _partitions(self, options: dict[str, Any]) -> None:
        from rail_django.operations import partitions as ops

        action = options["partitions_action"]
        if action == "status":
            for p in ops.status():
                if p.is_default:
                    span = "DEFAULT (rows no partition covers)"
                else:
                    span = f"{p.lower.isoformat() if p.lower else 'MINVALUE'} .. {p.upper.isoformat() if p.upper else ''}"
                self.stdout.write(f"{p.name}  {span}  ~{p.estimated_rows} rows  {p.size_bytes} bytes")
            strays = ops.default_rows()
            self.stdout.write(f"{strays} rows in the default partition." + (
                " Run 'audit_management partitions premake' to move them into partitions." if strays else ""))
        elif action == "premake":
            created = ops.premake()
            self.stdout.write(f"Created {len(created)} partitions" + (f": {', '.join(created)}" if created else "."))
        elif action == "drop":
            dropped = ops.drop_older_than(options["older_than_days"], options["archive"], log=self.stdout.write)
            self.stdout.write(f"Dropped {len(dropped)} partitions older than {options['older_than_days']} days.")
        elif action == "convert":
            legacy = ops.convert(log=self.stdout.write)
            self.stdout.write(f"The audit table is partitioned; the former table is partition {legacy}.")
        else:
            moved = ops.revert(log=self.stdout.write)
            self.stdout.write(f"Reverted: one plain table again ({moved} rows moved back).")


def _batch_size(text: str) -> int:
    """argparse type of ``ingest --batch`` and ``drain --batch-size``: 1-10000."""
    value = positive_int(text)
    if value > 10_000:
        raise ArgumentTypeError(f"{text!r} is more than 10000")
    return value


def _positive_seconds(text: str) -> float:
    """argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise ArgumentTypeError(f"{text!r} is not a number of seconds > 0")
    return value


def _checkpoint_lines(report: Any) -> str:
    """What the comparison with checkpoints covered, or what its absence leaves undetected."""
    summary = report.checkpoints
    if summary is None:
        return (
            "No checkpoints given: rows deleted at the end together with a wound-back head, or emptied tables, "
            "cannot be detected from the database alone (pass --checkpoints PATH)."
        )
    newest = summary.newest.checkpoint
    lines = [
        f"Checkpoints: {summary.checked} checked from {', '.join(summary.files)}; the newest vouches for sequence "
        f"{newest.sequence} (signed {newest.at}); the table reaches it."
    ]
    if report.head > newest.sequence:
        lines.append(f"Rows {newest.sequence + 1}..{report.head} are newer than every checkpoint given.")
    if summary.other_keys:
        lines.append(f"{summary.other_keys} checkpoints signed by other keys were not checked.")
    if summary.before_anchor:
        lines.append(f"{summary.before_anchor} checkpoints are older than the retention anchor (rows cleaned up).")
    lines += [f"Unreadable checkpoint: {line}" for line in summary.malformed]
    return "\n".join(lines)


class _Raw:
    """Writes to a command's stdout without the line ending ``OutputWrapper`` adds."""

    def __init__(self, wrapper: Any) -> None:
        self._wrapper = wrapper

    def write(self, text: str) -> None:
        self._wrapper.write(text, ending="")
