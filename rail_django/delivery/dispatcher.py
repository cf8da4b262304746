"""Delivery: hands events to the sinks, on or off the request thread.

With ``SECURITY_EVENT_ASYNC=True`` (the default) ``emit`` puts the event on a
bounded queue and returns; one background writer per process drains it in
batches (one ``bulk_create`` and one file write per batch). When the queue is
full the emitting thread writes the batch itself, so nothing is dropped.
With ``SECURITY_EVENT_ASYNC=False`` the sinks are written before ``emit``
returns (except on an event-loop thread, where the event is always queued:
``await security.aflush()`` waits for it). Either way a database row survives a rollback of the caller's
transaction: a write that would run inside ``transaction.atomic()`` goes
through a separate connection.

A failing sink is retried with backoff, then reported on the
``rail_django.audit`` logger once per incident; it never raises into a
request. The writer is fork-safe (a child starts its own) and flushed at exit.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connections

from rail_django.conf import SecurityConfig, get_config, on_config_change
from rail_django.delivery.journal import Journal, Segment, journal_directory, replay_orphans
from rail_django.events.types import SecurityEvent
from rail_django.integrity.chain import integrity_key, seal_pending
from rail_django.sinks import DatabaseSink, FileSink, Sink, WebhookSink

logger = logging.getLogger("rail_django.audit")

_STOP = object()
#: Pauses between attempts of a failed batch in the background writer.
RETRY_DELAYS = (0.05, 0.25, 1.0)
#: Idle seconds after which the writer closes its database connections.
IDLE_CLOSE_SECONDS = 1.0
#: Seconds the writer waits for a batch to fill after its first event (``flush()`` cuts it short).
#: One write per batch instead of one per event: far fewer commits, and far fewer hand-overs of
#: the GIL between the writer and the request threads, each of which can stall a request.
BATCH_LINGER_SECONDS = 0.05


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@contextmanager
def isolated_connection(alias: str) -> Iterator[None]:
    """Run the block on a fresh connection for ``alias`` (outside any open transaction)."""
    fresh = connections.create_connection(alias)
    previous = connections[alias]
    connections[alias] = fresh
    try:
        yield
    finally:
        connections[alias] = previous
        fresh.close()


def build_sinks(config: SecurityConfig) -> list[Sink]:
    sinks: list[Sink] = []
    if config.store_in_database:
        sinks.append(DatabaseSink(config.database_alias))
    if config.store_in_file:
        sinks.append(FileSink(config.log_file, config.log_file_max_bytes, config.log_file_backup_count))
    if config.webhook_url:
        sinks.append(
            WebhookSink(
                config.webhook_url,
                secret=config.webhook_secret,
                min_severity=config.webhook_min_severity,
                timeout=config.webhook_timeout,
                max_retries=config.webhook_max_retries,
                backoff=config.webhook_backoff,
                queue_size=config.queue_size,
            )
        )
    return sinks


#: Called once per sink incident as ``handler(sink_name, exc, events_affected)``; the app wires
#: :func:`rail_django.alerts.sink_failure.raise_audit_failure_alert` here in ``ready()``, so this
#: layer never calls back into the public API that sits above it.
SinkFailureHandler = Callable[[str, BaseException, int], None]


class SinkHealth:
    """Reports a sink's failures once per incident, and its recovery."""

    def __init__(self, on_incident: SinkFailureHandler | None = None) -> None:
        self.failing: dict[str, int] = {}
        self._lock = threading.Lock()
        self.on_incident = on_incident

    def failed(self, sink: Sink, events: Sequence[SecurityEvent], exc: BaseException) -> None:
        with self._lock:
            first = sink.name not in self.failing
            self.failing[sink.name] = self.failing.get(sink.name, 0) + len(events)
        if first:
            logger.error(
                "Audit sink %r failed (%s: %s); %d event(s) not written there, first %s. "
                "Further failures are counted until it recovers.",
                sink.name, type(exc).__name__, exc, len(events), events[0].event_id,
            )
            if self.on_incident is not None:
                try:
                    self.on_incident(sink.name, exc, len(events))
                except Exception:  # reporting a failure must never fail the caller
                    logger.exception("Could not report the failure of audit sink %r", sink.name)

    def succeeded(self, sink: Sink) -> None:
        if sink.name not in self.failing:
            return
        with self._lock:
            lost = self.failing.pop(sink.name, 0)
        logger.warning("Audit sink %r recovered; %d event(s) were not written to it meanwhile.", sink.name, lost)


@dataclass(slots=True)
class QueuedEvent:
    """An event waiting for the writer, with the journal segment that holds it."""

    event: SecurityEvent
    segment: Segment | None = None
    database_only: bool = False  # the other sinks already have it


class Dispatcher:
    """Owns the sinks, the journal, the queue and the background writer of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sinks: list[Sink] | None = None
        self._journal: Journal | None = None
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._idle = threading.Condition()
        self.on_sink_failure: SinkFailureHandler | None = None
        self.health = SinkHealth(self._report_sink_failure)
        self._seal_due = False
        self._last_seal = 0.0
        self._flushing = 0  # threads waiting in flush(): the writer must not linger

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
                    if config.store_in_database and config.journal_dir is not None:
                        directory = journal_directory(config.journal_dir, config.database_alias)
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
            self.health = SinkHealth(self._report_sink_failure)  # new sinks, new incidents
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            if self._thread is None or not self._thread.is_alive():
                self._queue, self._thread = None, None

    # -- entry point -------------------------------------------------------
    def deliver(self, event: SecurityEvent) -> None:
        config = get_config()
        # On an event loop thread blocking I/O would stall every request the
        # loop serves (and Django forbids the ORM there): always queue.
        if not config.async_delivery and not _on_event_loop():
            self._write_now(event, config)
            return
        item = QueuedEvent(event, self._journal_append(event))
        self._ensure_writer(config)
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            # Back-pressure: write this event and a batch of queued ones here.
            batch = [item, *self._take(config.batch_size - 1)]
            try:
                self._write_items(batch, retry=False)
            finally:
                self._settle(len(batch))

    def _journal_append(self, event: SecurityEvent) -> Segment | None:
        journal = self.journal
        if journal is None:
            return None
        try:
            segment = journal.append(event)
        except OSError as exc:
            self.health.failed(_JOURNAL, [event], exc)
            return None
        self.health.succeeded(_JOURNAL)
        return segment

    def _write_now(self, event: SecurityEvent, config: SecurityConfig) -> None:
        connection = connections[config.database_alias]
        if connection.in_atomic_block and connection.vendor == "sqlite":
            # SQLite has one writer: a second connection would wait for the
            # caller's transaction to end. The writer thread stores the row as
            # soon as it does, commit or rollback; the other sinks write now.
            self._write_items([QueuedEvent(event)], retry=False, sinks=self._non_database_sinks())
            self._enqueue(QueuedEvent(event, self._journal_append(event), database_only=True), config)
            return
        failed = self._write_items([QueuedEvent(event)], retry=False, isolate=connection.in_atomic_block)
        if failed:
            # Hand the row to the writer, which retries (and spools) until it can.
            self._enqueue(QueuedEvent(event, self._journal_append(event), database_only=True), config)
        elif config.store_in_database and integrity_key() is not None:
            self._seal_due = True  # the writer seals it when idle, off the request path
            self._ensure_writer(config)

    def _enqueue(self, item: QueuedEvent, config: SecurityConfig) -> None:
        self._ensure_writer(config)
        with self._idle:
            self._pending += 1
        self._queue.put(item)

    def _non_database_sinks(self) -> list[Sink]:
        return [s for s in self.sinks() if not isinstance(s, DatabaseSink)]

    def _write_items(
        self, items: list[QueuedEvent], retry: bool, isolate: bool = False, sinks: list[Sink] | None = None
    ) -> set:
        """Write ``items`` to every sink; returns the ids of events the database refused."""
        db_failed: set = set()
        for sink in self.sinks() if sinks is None else sinks:
            is_database = isinstance(sink, DatabaseSink)
            events = [i.event for i in items if is_database or not i.database_only]
            if not events:
                continue
            if is_database and isolate:
                with isolated_connection(sink.alias):
                    failed = self._write_sink(sink, events, retry)
            else:
                failed = self._write_sink(sink, events, retry)
            if is_database:
                db_failed = failed
        journal = self._journal
        if journal is not None and any(i.segment is not None for i in items):
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
        return threading.current_thread() is self._thread

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

    # -- background writer ---------------------------------------------------
    def _ensure_writer(self, config: SecurityConfig) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                if self._queue is None:
                    self._queue = queue.Queue(maxsize=config.queue_size)
                self._thread = threading.Thread(target=self._run, name="rail-django-audit-writer", daemon=True)
                self._thread.start()

    def _take(self, limit: int) -> list:
        items = []
        while len(items) < limit:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:  # keep the stop marker for the writer
                self._queue.put(_STOP)
                break
            items.append(item)
        return items

    def _run(self) -> None:
        self._recover_journals()
        while True:
            try:
                first = self._queue.get(timeout=IDLE_CLOSE_SECONDS)
            except queue.Empty:
                self._redeliver_spool()
                self._seal(force=True)
                connections.close_all()  # idle: do not hold connections open
                continue
            if first is _STOP:
                connections.close_all()
                return
            limit = get_config().batch_size
            items = [first, *self._take(limit - 1)]
            if len(items) < limit:
                self._linger()
                items += self._take(limit - len(items))
            try:
                self._write_items(items, retry=True)
                self._seal_due = True
                self._seal(force=False)
            except Exception:
                logger.exception("Audit writer failed on a batch of %d event(s)", len(items))
            finally:
                self._settle(len(items))

    def _linger(self) -> None:
        """Let a batch build up for :data:`BATCH_LINGER_SECONDS`, unless someone is flushing."""
        with self._idle:
            if not self._flushing:
                self._idle.wait(BATCH_LINGER_SECONDS)

    def _seal(self, force: bool) -> None:
        """Chain newly stored rows (``AUDIT_INTEGRITY_KEY``), at most once a second under load."""
        if not self._seal_due or integrity_key() is None:
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
        """Store what dead processes left in the journal directory."""
        journal, sink = self.journal, self._database_sink()
        if journal is None or sink is None:
            return
        try:
            count = replay_orphans(journal.directory, sink.write, get_config().batch_size)
        except Exception:
            logger.exception("Could not replay the audit journal in %s", journal.directory)
            return
        if count:
            logger.warning("Replayed %d audit event(s) left in the journal by a stopped process.", count)

    def _redeliver_spool(self) -> None:
        journal, sink = self._journal, self._database_sink()
        if journal is None or sink is None:
            return
        for segment in journal.spooled():
            try:
                count = journal.redeliver(segment, lambda events: self._store_spooled(journal, sink, events))
            except Exception:
                connections[sink.alias].close()
                return  # still down: try again when next idle
            self.health.succeeded(sink)
            logger.warning("Delivered %d spooled audit event(s) from %s.", count, segment.path.name)

    def _store_spooled(self, journal: Journal, sink: DatabaseSink, events: list[SecurityEvent]) -> None:
        """Write spooled events; one the database refuses for good is set aside, not retried forever."""
        try:
            sink.write(events)
            return
        except Exception:
            if len(events) == 1:
                raise
        refused = []
        for event in events:
            try:
                sink.write([event])
            except Exception as exc:
                refused.append((event, exc))
        if len(refused) == len(events):
            raise ConnectionError("the database refused every spooled event: still down")
        path = journal.set_aside([event for event, _ in refused])
        for event, exc in refused:
            logger.error(
                "Audit event %s (%s) is refused by the database (%s: %s); kept in %s.",
                event.event_id, event.event_type, type(exc).__name__, exc, path,
            )

    def _settle(self, count: int) -> None:
        with self._idle:
            self._pending -= count
            if self._pending <= 0:
                self._idle.notify_all()

    # -- flush / shutdown ----------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Block until every queued event is written; False on timeout.

        Sealing into the integrity chain is not waited for: it follows within
        about a second (``seal_pending()`` does it at once).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            self._flushing += 1
            self._idle.notify_all()  # a lingering writer writes now
            try:
                while self._pending > 0:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._idle.wait(remaining if remaining is not None else 1.0)
            finally:
                self._flushing -= 1
        for sink in self._sinks or ():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not sink.flush(remaining):
                return False
        return True

    def shutdown(self, timeout: float | None = 10) -> None:
        """Flush, then stop the writer (its connections are closed)."""
        self.flush(timeout)
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout)
        for sink in self._sinks or ():
            sink.close()

    def after_fork_in_child(self) -> None:
        # The parent's thread does not exist here and its queue belongs to the
        # parent, which writes those events; the child starts clean.
        self._lock = threading.Lock()
        self._idle = threading.Condition()
        self._queue = None
        self._thread = None
        self._pending = 0
        self._flushing = 0
        self._sinks = None
        if self._journal is not None:
            self._journal.after_fork_in_child()
            self._journal = None


class _JournalName:
    name = "journal"


_JOURNAL = _JournalName()


dispatcher = Dispatcher()


def install_process_hooks() -> None:
    """Rebuild on settings changes, start clean in a forked child, flush at exit (from ``AppConfig.ready``)."""
    on_config_change(dispatcher.reset)
    os.register_at_fork(after_in_child=dispatcher.after_fork_in_child)
    atexit.register(dispatcher.shutdown, 5)
