"""Delivery: hands events to the sinks, on or off the request thread.

With ``SECURITY_EVENT_ASYNC=True`` (the default) ``emit`` puts the event on a
bounded queue and returns; one background writer per process
(:class:`~rail_django.delivery.worker.BackgroundWorker`) drains it in batches
(one database insert and one file write per batch). When the queue is full
the emitting thread writes the batch itself, so nothing is dropped.
With ``SECURITY_EVENT_ASYNC=False`` the sinks are written before ``emit``
returns (except on an event-loop thread, where the event is always queued:
``await security.aflush()`` waits for it). Either way a database row survives
a rollback of the caller's transaction: inside ``transaction.atomic()`` the
row is handed to the writer thread, whose database connection (Django gives
every thread its own) is outside the caller's transaction, and ``emit``
waits until it is stored.

With ``AUDIT_DELIVERY = "drain"`` (and ``SECURITY_EVENT_ASYNC=True``) ``emit``
only appends the event to this process's drain journal and returns: no
writer thread, no queue; ``audit_management drain`` delivers it (see
:mod:`rail_django.delivery.drain`), and ``flush()`` waits for that drain.
Synchronous delivery, and an append the disk refuses, take the paths below.

The journal covers the *primary* sink: the database sink or, with
``AUDIT_STREAM``, the stream sink that replaces it (events then reach the
database through ``audit_management ingest``). Events the primary sink
refuses stay in the journal and are re-sent.

A failing sink is retried with backoff, then reported on the
``rail_django.audit`` logger once per incident; it never raises into a
request. The writer is fork-safe (a child starts its own) and flushed at exit.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
from dataclasses import dataclass

from django.db import DatabaseError, connections, transaction

from rail_django.conf import SecurityConfig, get_config, on_config_change
from rail_django.delivery import spool
from rail_django.delivery.drain import AppendOnlyJournal, drain_directory
from rail_django.delivery.health import JOURNAL, SinkFailureHandler, SinkHealth
from rail_django.delivery.journal import Journal, Segment, journal_directory
from rail_django.delivery.worker import BackgroundWorker
from rail_django.events.types import SecurityEvent
from rail_django.integrity.chain import integrity_key, seal_pending
from rail_django.sinks import DatabaseSink, Sink, StreamSink, build_sinks
from rail_django.sinks.stream import stream_journal_directory

__all__ = ["Dispatcher", "QueuedEvent", "SinkHealth", "build_sinks", "dispatcher", "install_process_hooks"]

logger = logging.getLogger("rail_django.audit")

#: Pauses between attempts of a failed batch in the background writer.
RETRY_DELAYS = (0.05, 0.25, 1.0)
#: Idle seconds after which the writer closes its database connections.
IDLE_CLOSE_SECONDS = 1.0
#: Seconds the writer waits for a batch to fill after its first event (``flush()`` cuts it short).
#: One write per batch instead of one per event: far fewer commits, and far fewer hand-overs of
#: the GIL between the writer and the request threads, each of which can stall a request.
BATCH_LINGER_SECONDS = 0.05
#: Longest a synchronous ``emit`` inside ``transaction.atomic()`` waits for the writer to store its row;
#: after that the row is stored when the writer can (it is journaled meanwhile).
SYNC_WAIT_SECONDS = 30.0


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@dataclass(slots=True)
class QueuedEvent:
    """An event waiting for the writer, with the journal segment that holds it."""

    event: SecurityEvent
    segment: Segment | None = None
    database_only: bool = False  # the other sinks already have it: for the primary sink only


class Dispatcher:
    """Owns the sinks, the journal and the background writer of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sinks: list[Sink] | None = None
        self._journal: Journal | None = None
        self._writer: BackgroundWorker[QueuedEvent] | None = None
        #: ``AUDIT_DELIVERY = "drain"``: this process's append-only journal (see delivery/drain.py).
        self._drain: AppendOnlyJournal | None = None
        self.on_sink_failure: SinkFailureHandler | None = None
        self.health = SinkHealth(self._report_sink_failure)
        self._seal_due = False
        self._last_seal = 0.0

    def _report_sink_failure(self, sink_name: str, exc: BaseException, count: int) -> None:
        if self.on_sink_failure is not None:
            self.on_sink_failure(sink_name, exc, count)

    # -- configuration ----------------------------------------------------
    def sinks(self) -> list[Sink]:
        sinks = self._sinks
        if sinks is None:
            with self._lock:
                if self._sinks is None:
                    config = get_config()
                    self._sinks = build_sinks(config)
                    if config.journal_dir is not None and _primary(self._sinks) is not None:
                        directory = (
                            stream_journal_directory(config.journal_dir, config.stream) if config.stream is not None
                            else journal_directory(config.journal_dir, config.database_alias)
                        )
                        self._journal = Journal(directory, config.journal_segment_bytes)
                sinks = self._sinks
        return sinks

    @property
    def journal(self) -> Journal | None:
        self.sinks()
        return self._journal

    def reset(self) -> None:
        """Finish queued work, stop the writer and rebuild from the current settings."""
        self.shutdown(timeout=10)
        with self._lock:
            self._sinks = None
            self._writer = None
            self.health = SinkHealth(self._report_sink_failure)  # new sinks, new incidents
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            if self._drain is not None:
                self._drain.close()
                self._drain = None

    def _drain_journal(self, config: SecurityConfig) -> AppendOnlyJournal | None:
        drain = self._drain
        if drain is None:
            directory = drain_directory(config)
            if directory is None:  # no journal (E111): the in-process writer delivers
                return None
            with self._lock:
                if self._drain is None:
                    self._drain = AppendOnlyJournal(directory, config.journal_segment_bytes)
                drain = self._drain
        return drain

    def _worker(self, config: SecurityConfig) -> BackgroundWorker[QueuedEvent]:
        writer = self._writer
        if writer is None:
            with self._lock:
                if self._writer is None:
                    self._writer = BackgroundWorker(
                        "rail-django-audit-writer", self._write_batch,
                        queue_size=config.queue_size, batch_size=config.batch_size, linger=BATCH_LINGER_SECONDS,
                        idle_seconds=IDLE_CLOSE_SECONDS, on_start=self._recover_journals, on_idle=self._when_idle,
                        on_stop=connections.close_all,
                    )
                writer = self._writer
        return writer

    # -- entry point -------------------------------------------------------
    def deliver(self, event: SecurityEvent) -> None:
        config = get_config()
        # On an event loop thread blocking I/O would stall every request the
        # loop serves (and Django forbids the ORM there): always queue.
        if not config.async_delivery and not _on_event_loop():
            self._write_now(event, config)
            return
        if config.delivery == "drain" and self._append_for_drain(event, config):
            return  # `audit_management drain` delivers it
        self._queue(QueuedEvent(event, self._journal_append(event)), config)

    def _queue(self, item: QueuedEvent, config: SecurityConfig) -> None:
        writer = self._worker(config)
        if not writer.put(item):
            writer.handle_here(item)  # back-pressure: this thread writes a batch

    def _journal_append(self, event: SecurityEvent) -> Segment | None:
        journal = self.journal
        if journal is None:
            return None
        try:
            segment = journal.append(event)
        except OSError as exc:
            self.health.failed(JOURNAL, [event], exc)
            return None
        self.health.succeeded(JOURNAL)
        return segment

    def _append_for_drain(self, event: SecurityEvent, config: SecurityConfig) -> bool:
        """Drain mode: append the event for the drain; False (the writer delivers it) when that is impossible."""
        drain = self._drain_journal(config)
        if drain is None:
            return False
        try:
            drain.append(event)
        except OSError as exc:
            self.health.failed(JOURNAL, [event], exc)
            return False
        self.health.succeeded(JOURNAL)
        return True

    def _write_now(self, event: SecurityEvent, config: SecurityConfig) -> None:
        writes_database = isinstance(_primary(self.sinks()), DatabaseSink)
        if writes_database and self._in_transaction(config.database_alias):
            self._write_outside_transaction(event, config)
            return
        failed = self._write_items([QueuedEvent(event)], retry=False)
        if failed:
            # Hand the row to the writer, which retries (and spools) until it can.
            self._queue(QueuedEvent(event, self._journal_append(event), database_only=True), config)
        elif writes_database and integrity_key() is not None:
            self._seal_due = True  # the writer seals it when idle, off the request path
            self._worker(config).start()

    @staticmethod
    def _in_transaction(alias: str) -> bool:
        try:
            return not transaction.get_autocommit(using=alias)
        except DatabaseError:  # cannot even connect: the write below fails, and the writer spools the row
            return False

    def _write_outside_transaction(self, event: SecurityEvent, config: SecurityConfig) -> None:
        """Inside the caller's transaction: the other sinks now, the row through the writer's own connection."""
        self._write_items([QueuedEvent(event)], retry=False, sinks=self._non_database_sinks())
        item = QueuedEvent(event, self._journal_append(event), database_only=True)
        writer = self._worker(config)
        if connections[config.database_alias].vendor == "sqlite" or writer.is_worker_thread():
            # SQLite has one writer: the writer thread would wait for the caller's transaction to end.
            # It stores the row as soon as that transaction ends, committed or rolled back.
            self._queue(item, config)
            return
        if not writer.put_and_wait(item, SYNC_WAIT_SECONDS):
            logger.warning("Audit event %s is stored later: the writer did not answer within %s s.",
                           event.event_id, SYNC_WAIT_SECONDS)

    def _non_database_sinks(self) -> list[Sink]:
        return [s for s in self.sinks() if not isinstance(s, DatabaseSink)]

    def _write_batch(self, items: list[QueuedEvent]) -> None:
        """The writer's handler; also runs on an emitting thread under back-pressure (no retries there)."""
        on_writer = self._on_writer_thread()
        self._write_items(items, retry=on_writer)
        if on_writer:
            self._seal_due = True
            self._seal(force=False)

    def _write_items(self, items: list[QueuedEvent], retry: bool, sinks: list[Sink] | None = None) -> set:
        """Write ``items`` to every sink; returns the ids of events the primary sink (database or stream) refused."""
        db_failed: set = set()
        for sink in self.sinks() if sinks is None else sinks:
            is_primary = _is_primary(sink)
            events = [i.event for i in items if is_primary or not i.database_only]
            if not events:
                continue
            failed = self._write_sink(sink, events, retry)
            if is_primary:
                db_failed = failed
        journal = self._journal
        if journal is not None and any(i.segment is not None for i in items):
            if not db_failed:  # the usual case: no per-event id lookups
                journal.mark([i.segment for i in items], stored=True)
            else:
                journal.mark([i.segment for i in items if i.event.event_id not in db_failed], stored=True)
                journal.mark([i.segment for i in items if i.event.event_id in db_failed], stored=False)
        return db_failed

    def _write_sink(self, sink: Sink, batch: list[SecurityEvent], retry: bool) -> set:
        """Write one sink, retrying when asked; the ids of the events it finally refused."""
        error = self._attempts(sink, batch, len(RETRY_DELAYS) + 1 if retry else 1)
        failed: set = set()
        if error is not None and len(batch) > 1:
            # One bad event must not sink its batch: write them one by one.
            for event in batch:
                single_error = self._attempts(sink, [event], 1)
                if single_error is not None:
                    failed.add(event.event_id)
                    self.health.failed(sink, [event], single_error)
        elif error is not None:
            failed.add(batch[0].event_id)
            self.health.failed(sink, batch, error)
        else:
            self.health.succeeded(sink)
        if isinstance(sink, DatabaseSink) and self._on_writer_thread():
            # Only the writer's own connection: a request's belongs to Django's request cycle.
            connections[sink.alias].close_if_unusable_or_obsolete()
        return failed

    def _on_writer_thread(self) -> bool:
        writer = self._writer
        return writer is not None and writer.is_worker_thread()

    def _attempts(self, sink: Sink, batch: list[SecurityEvent], attempts: int) -> Exception | None:
        """Try ``sink.write(batch)`` up to ``attempts`` times; the last error or None."""
        error: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(RETRY_DELAYS[min(attempt - 1, len(RETRY_DELAYS) - 1)])
            try:
                sink.write(batch)
                return None
            except Exception as exc:
                error = exc
                if isinstance(sink, DatabaseSink) and self._on_writer_thread():
                    connections[sink.alias].close()  # reconnect on the next attempt
        return error

    # -- the writer's own work -------------------------------------------------
    def _when_idle(self) -> None:
        spool.redeliver_spool(self._journal, _primary(self.sinks()), self.health)
        self._seal(force=True)
        connections.close_all()  # idle: do not hold connections open (this thread's only)

    def _seal(self, force: bool) -> None:
        """Chain newly stored rows (``AUDIT_INTEGRITY_KEY``), at most once a second under load."""
        if not self._seal_due or integrity_key() is None or self._database_sink() is None:
            return
        if not force and time.monotonic() - self._last_seal < 1.0:
            return
        self._seal_due = False
        self._last_seal = time.monotonic()
        try:
            seal_pending(get_config().database_alias)
        except Exception:
            self._seal_due = True
            logger.exception("Could not seal audit rows into the integrity chain")

    def _database_sink(self) -> DatabaseSink | None:
        return next((s for s in self.sinks() if isinstance(s, DatabaseSink)), None)

    def _recover_journals(self) -> None:
        spool.recover_journals(self.journal, _primary(self.sinks()), get_config().batch_size)

    # -- flush / shutdown ----------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Block until every queued event is written; False on timeout.

        In drain mode: until the drain has delivered what this process appended (False, logged, when
        no drain is running).

        Sealing into the integrity chain is not waited for: it follows within
        about a second (``seal_pending()`` does it at once).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        drain = self._drain
        if drain is not None and not drain.wait_delivered(timeout):
            return False  # (logged: the drain is behind, or none is running)
        return self._flush_here(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _flush_here(self, timeout: float | None) -> bool:
        """What this process holds: the writer's queue and the sinks' own buffers."""
        deadline = None if timeout is None else time.monotonic() + timeout
        writer = self._writer
        if writer is not None and not writer.flush(timeout):
            return False
        for sink in self._sinks or ():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not sink.flush(remaining):
                return False
        return True

    def shutdown(self, timeout: float | None = 10) -> None:
        """Flush, then stop the writer (its connections are closed).

        Drain mode's journal is not waited for: what it holds is on disk, for the drain.
        """
        self._flush_here(timeout)
        if self._writer is not None:
            self._writer.stop(timeout)
        for sink in self._sinks or ():
            sink.close()

    def after_fork_in_child(self) -> None:
        # The parent's thread does not exist here and its queue belongs to the
        # parent, which writes those events; the child starts clean.
        self._lock = threading.Lock()
        self._writer = None
        self._sinks = None
        if self._journal is not None:
            self._journal.after_fork_in_child()
            self._journal = None
        if self._drain is not None:
            self._drain.after_fork_in_child()
            self._drain = None


def _is_primary(sink: Sink) -> bool:
    """The sink the journal covers: the database, or the stream that replaces it."""
    return isinstance(sink, (DatabaseSink, StreamSink))


def _primary(sinks: list[Sink]) -> Sink | None:
    return next((s for s in sinks if _is_primary(s)), None)


dispatcher = Dispatcher()


def install_process_hooks() -> None:
    """Rebuild on settings changes, start clean in a forked child, flush at exit (from ``AppConfig.ready``)."""
    on_config_change(dispatcher.reset)
    os.register_at_fork(after_in_child=dispatcher.after_fork_in_child)
    atexit.register(dispatcher.shutdown, 5)
