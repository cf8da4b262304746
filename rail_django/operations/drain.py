"""``audit_management drain``: deliver what the request processes of this host appended (``AUDIT_DELIVERY = "drain"``).

One drain per journal directory (an exclusive lock; a second one exits with an error). Each pass reads
every segment of ``<AUDIT_JOURNAL_DIR>/<database>/drain/`` from its stored offset up to the last complete
line, in batches; each batch goes to every configured sink (database or stream, file, webhook) with the
in-process writer's retries and failure reporting (:class:`~rail_django.delivery.health.SinkHealth`), and
its end offset is stored only once every sink accepted it. So delivery is at least once to the file and
webhook sinks (a drain killed between a write and its offset re-sends that batch) and exactly once in the
database (the insert skips an ``event_id`` it has). While a sink refuses a batch the drain keeps it and
retries with backoff: the lag grows, nothing is dropped. An event the primary sink refuses on its own
(the rest of its batch accepted) is set aside in ``rejected-drain-<pid>.jsonl`` and logged.

SIGTERM / SIGINT stop it after the batch in hand is delivered and its offset written (exit status 0).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import connections

from rail_django.conf import get_config
from rail_django.delivery.drain import Batch, Doorbell, SegmentReader, drain_directory, ring_doorbell, write_offset
from rail_django.delivery.health import SinkHealth
from rail_django.events.types import SecurityEvent
from rail_django.integrity.chain import integrity_key, seal_pending
from rail_django.operations.common import RunClock
from rail_django.sinks import DatabaseSink, Sink, StreamSink, build_sinks
from rail_django.sinks.base import event_line

logger = logging.getLogger("rail_django.audit")

#: Pauses between attempts of a batch a sink refused (the in-process writer's).
RETRY_DELAYS = (0.05, 0.25, 1.0)
#: Pauses between passes while a sink keeps refusing (the last repeats).
BACKOFF_DELAYS = (1.0, 2.0, 5.0, 10.0)
DEFAULT_BATCH_SIZE = 500
DEFAULT_POLL_SECONDS = 0.2
#: Seconds the drain lets new events gather before writing them (unless a ``flush()`` waits): one
#: transaction per batch rather than per event, as the in-process writer's linger.
LINGER_SECONDS = 0.05


class DrainError(Exception):
    """The drain cannot start: no journal, or another drain holds the directory."""


@dataclass
class DrainStats(RunClock):
    """What one ``drain`` run did."""

    delivered: int = 0
    batches: int = 0
    segments_deleted: int = 0
    set_aside: int = 0
    refused_batches: int = 0

    @property
    def rate(self) -> float:
        return self.per_second(self.delivered)


class Drain:
    """One drain process (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        sinks: list[Sink],
        batch_size: int = DEFAULT_BATCH_SIZE,
        poll: float = DEFAULT_POLL_SECONDS,
        report_every: float = 10.0,
        report: Callable[[str], None] | None = None,
        health: SinkHealth | None = None,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        linger: float = LINGER_SECONDS,
    ) -> None:
        self.reader = SegmentReader(directory)
        self.sinks = sinks
        self.batch_size = batch_size
        self.poll = poll
        self.report_every = report_every
        self.report = report or logger.info
        self.health = health or SinkHealth()
        self.retry_delays = retry_delays
        self.linger = linger
        self.stats = DrainStats()
        self._stop = threading.Event()
        self.doorbell = Doorbell(directory)
        self._last_seal = 0.0
        self._failures = 0

    def stop(self) -> None:
        """Finish the batch in hand, store its offset and return (the signal handlers call this)."""
        self._stop.set()
        ring_doorbell(self.reader.directory)  # a wait in progress ends now

    def _pause(self, seconds: float) -> None:
        """Wait between looks at the journal: until ``seconds`` pass, the doorbell rings or ``stop()``."""
        if not self._stop.is_set():
            self.doorbell.wait(seconds)

    def run(self, once: bool = False) -> DrainStats:
        """Deliver until stopped (``once``: what is there now, then return)."""
        if not self.reader.lock():
            raise DrainError(f"another drain is running on {self.reader.directory}")
        previous = _install_signal_handlers(self.stop)
        self.doorbell.open()
        try:
            self.report(f"drain: delivering {self.reader.directory} to {', '.join(s.name for s in self.sinks) or 'no sink'} "
                        f"(batch {self.batch_size}).")
            last_report, reported = time.monotonic(), 0
            seen: float | None = None  # when undelivered events were first seen
            swept = time.monotonic()
            while not self._stop.is_set():
                if not once and not self._failures:
                    if not self.reader.pending()[1]:
                        seen = None
                        if time.monotonic() - swept >= 1.0:  # delete the segments their processes let go of
                            swept = time.monotonic()
                            self.run_pass()
                        self._idle()
                        self._pause(self.poll)
                        continue
                    seen = seen or time.monotonic()
                    waited = time.monotonic() - seen
                    if waited < self.linger and not self.reader.hurried():
                        self._pause(min(self.poll, self.linger - waited))
                        continue
                seen = None
                delivered, refused = self.run_pass()
                now = time.monotonic()
                if now - last_report >= self.report_every:
                    self._report(self.stats.delivered - reported, now - last_report)
                    last_report, reported = now, self.stats.delivered
                if once and not refused:
                    break
                if refused:
                    self._failures += 1
                    if once:  # (the batch stays in the journal for the next run)
                        break
                    self._stop.wait(BACKOFF_DELAYS[min(self._failures - 1, len(BACKOFF_DELAYS) - 1)])
                else:
                    self._failures = 0
                    if not delivered:
                        self._idle()
                        self._pause(self.poll)
            self._report(None, None)
        finally:
            _restore_signal_handlers(previous)
            self.doorbell.close()
            for sink in self.sinks:
                sink.flush(None)
                sink.close()
            connections.close_all()
            self.reader.unlock()
        return self.stats

    def run_pass(self) -> tuple[int, bool]:
        """One pass over every segment: ``(events delivered, whether a sink refused a batch)``."""
        delivered = 0
        for segment in self.reader.segments():
            for batch in self.reader.batches(segment, self.batch_size):
                if not self.deliver(batch):
                    return delivered, True
                delivered += len(batch.events)
                if self._stop.is_set():
                    return delivered, False
            if self.reader.finish(segment):
                self.stats.segments_deleted += 1
        return delivered, False

    def deliver(self, batch: Batch) -> bool:
        """Write ``batch`` to every sink, then store its end offset; False (offset kept) when a sink refused it."""
        events = batch.events
        if events:
            for sink in self.sinks:
                if not self._write(sink, events):
                    self.stats.refused_batches += 1
                    return False
            for sink in self.sinks:
                sink.flush(None)  # the webhook sends from its own thread: done before the offset moves on
        write_offset(batch.segment, batch.end)
        self.stats.delivered += len(events)
        self.stats.batches += 1
        self._seal()
        return True

    def _write(self, sink: Sink, events: list[SecurityEvent]) -> bool:
        error = self._attempts(sink, events, len(self.retry_delays) + 1)
        if error is None:
            self.health.succeeded(sink)
            return True
        if len(events) > 1 and _is_primary(sink):
            # One event the sink refuses must not hold back its batch: find it, set it aside.
            refused = [(event, exc) for event in events if (exc := self._attempts(sink, [event], 1)) is not None]
            if len(refused) < len(events):
                self._set_aside(sink, refused)
                self.health.succeeded(sink)
                return True
        self.health.failed(sink, events, error)
        return False

    def _attempts(self, sink: Sink, events: list[SecurityEvent], attempts: int) -> Exception | None:
        error: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                self._stop.wait(self.retry_delays[min(attempt - 1, len(self.retry_delays) - 1)])
            try:
                sink.write(events)
                return None
            except Exception as exc:
                error = exc
                if isinstance(sink, DatabaseSink):
                    _close_connection(sink.alias)  # reconnect on the next attempt
        return error

    def _set_aside(self, sink: Sink, refused: list[tuple[SecurityEvent, Exception]]) -> None:
        path = self.reader.directory / f"rejected-drain-{os.getpid()}.jsonl"
        with open(path, "ab") as handle:
            handle.writelines(event_line(event) for event, _ in refused)
        self.stats.set_aside += len(refused)
        for event, exc in refused:
            logger.error("Audit event %s (%s) is refused by the %s sink (%s: %s); kept in %s.",
                         event.event_id, event.event_type, sink.name, type(exc).__name__, exc, path)

    def _seal(self) -> None:
        """Chain newly stored rows (``AUDIT_INTEGRITY_KEY``), at most once a second."""
        database = next((s for s in self.sinks if isinstance(s, DatabaseSink)), None)
        if database is None or integrity_key() is None or time.monotonic() - self._last_seal < 1.0:
            return
        self._last_seal = time.monotonic()
        try:
            seal_pending(database.alias)
        except Exception:
            logger.exception("drain: could not seal audit rows into the integrity chain")

    def _idle(self) -> None:
        for sink in self.sinks:
            if isinstance(sink, DatabaseSink):
                connections[sink.alias].close_if_unusable_or_obsolete()

    def _report(self, count: int | None, seconds: float | None) -> None:
        segments, pending = self.reader.pending()
        lag = f"lag {pending} byte(s) in {segments} segment(s)"
        if count is None:
            self.report(f"drain: stopped; {self.stats.delivered} event(s) delivered in {self.stats.batches} "
                        f"batch(es) ({self.stats.rate:.0f}/s), {self.stats.segments_deleted} segment(s) deleted, {lag}.")
        else:
            rate = count / seconds if seconds else 0.0
            self.report(f"drain: {self.stats.delivered} event(s) delivered ({rate:.0f}/s), {lag}.")


def _is_primary(sink: Sink) -> bool:
    return isinstance(sink, (DatabaseSink, StreamSink))


def _close_connection(alias: str) -> None:
    try:
        connections[alias].close()
    except Exception:  # closing a connection that is already broken
        logger.debug("drain: closing the database connection failed", exc_info=True)


def _install_signal_handlers(stop: Callable[[], None]) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}  # (a drain run in a thread, by tests: stopped with Drain.stop())
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, lambda *_: stop())
    return previous


def _restore_signal_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def build_drain(
    batch_size: int = DEFAULT_BATCH_SIZE,
    poll: float = DEFAULT_POLL_SECONDS,
    report_every: float = 10.0,
    report: Callable[[str], None] | None = None,
) -> Drain:
    """A :class:`Drain` of the project's journal directory into the configured sinks."""
    config = get_config()
    directory = drain_directory(config)
    if directory is None:
        raise DrainError("AUDIT_JOURNAL_DIR is None: there is no journal to drain.")
    from rail_django.delivery.dispatcher import dispatcher

    health = SinkHealth(dispatcher.on_sink_failure)  # the sink-failure alert, as the in-process writer raises it
    return Drain(directory, build_sinks(config), batch_size=batch_size, poll=poll, report_every=report_every,
                 report=report, health=health)


def run_drain(
    once: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    poll: float = DEFAULT_POLL_SECONDS,
    report_every: float = 10.0,
    report: Callable[[str], None] | None = None,
) -> DrainStats:
    """Run ``drain`` on the project's journal (``once``: deliver what is there, then return)."""
    return build_drain(batch_size, poll, report_every, report).run(once=once)
