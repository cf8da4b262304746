"""``audit_management ingest``: store the ``AUDIT_STREAM`` stream in the database.

A durable JetStream pull consumer (``AUDIT_STREAM["durable"]``), shared by every ``ingest`` process: the
server hands each message to one of them. Each fetched batch is written in one transaction by the database
sink's bulk insert (:class:`~rail_django.sinks.database.DatabaseSink`, idempotent on ``event_id``) and
acknowledged only once committed. A process killed between commit and ack gets its batch redelivered (to
itself or another process) after the consumer's ``ack_wait``; the insert skips the rows already there.

While the database refuses a batch, ``ingest`` keeps the messages unacknowledged (telling JetStream it is
still working on them), reconnects and retries with backoff: it catches up once the database is back.
SIGTERM / SIGINT stop it after the batch in hand is stored and acknowledged (while the database is away,
the batch is handed back to the stream unacknowledged instead, for the next ingest to store).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from django.db import connections

from rail_django.conf import StreamConfig, get_config
from rail_django.events.types import SecurityEvent
from rail_django.integrity.chain import integrity_key, seal_pending
from rail_django.operations.common import RunClock
from rail_django.sinks.database import DatabaseSink
from rail_django.sinks.stream import connect, ensure_stream

logger = logging.getLogger("rail_django.audit")

#: Seconds a fetched message may stay unacknowledged before JetStream hands it to another consumer.
ACK_WAIT_SECONDS = 60.0
#: Pauses between attempts to store a batch the database refused (the last repeats).
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
#: Seconds one fetch waits for messages.
FETCH_TIMEOUT = 1.0
#: Seconds ingest keeps asking for the stream and its consumer at start-up: a cluster that has just
#: (re)started answers JetStream API requests with timeouts or 503 until its leaders are elected.
STARTUP_SECONDS = 60.0


@dataclass
class IngestStats(RunClock):
    """What one ``ingest`` run did."""

    stored: int = 0
    batches: int = 0
    rejected: int = 0
    #: Messages handed back unstored (``nak``) because a stop was asked while the database was away.
    returned: int = 0
    db_failures: int = 0
    pending: int | None = None

    @property
    def rate(self) -> float:
        return self.per_second(self.stored)


class IngestError(Exception):
    """``ingest`` cannot start: ``AUDIT_STREAM`` is not set, or no NATS server answers."""


class Ingest:
    """One ``ingest`` process (see the module docstring)."""

    def __init__(
        self,
        config: StreamConfig,
        alias: str,
        batch: int | None = None,
        max_events: int | None = None,
        idle_exit: float | None = None,
        report_every: float = 10.0,
        report: Callable[[str], None] | None = None,
        partitioning: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.alias = alias
        self.batch = batch or config.batch
        self.max_events = max_events
        self.idle_exit = idle_exit
        self.report_every = report_every
        self.report = report or logger.info
        self.stats = IngestStats()
        self.sink = DatabaseSink(alias, partitioning)  # premakes partitions like the in-process writer
        self._stop: asyncio.Event | None = None
        # One thread for the database: Django's connection is per thread, and the ORM refuses an event loop.
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rail-django-ingest-db")
        self._last_seal = 0.0

    def stop(self) -> None:
        """Finish the batch in hand, acknowledge it, and return (the signal handlers call this)."""
        if self._stop is not None:
            self._stop.set()

    def run(self) -> IngestStats:
        """Consume until stopped, ``max_events`` stored or ``idle_exit`` seconds without a message."""
        try:
            return asyncio.run(self._main())
        finally:
            self._db.submit(connections.close_all).result()
            self._db.shutdown()

    async def _main(self) -> IngestStats:

        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        try:
            client = await connect(self.config, name="rail-django-ingest", wait=max(5.0, 3 * self.config.connect_timeout))
        except Exception as exc:
            raise IngestError(f"cannot reach NATS at {', '.join(self.config.servers)} ({type(exc).__name__}: {exc})") from exc
        try:
            js = client.jetstream(timeout=max(5.0, self.config.publish_timeout))
            await self._set_up(js)
            puller = _Puller(client, self.config.stream, self.config.durable)
            await puller.start()
            self.report(f"ingest: consuming stream {self.config.stream} as {self.config.durable} "
                        f"(batch {self.batch}) into database {self.alias!r}.")
            last_message = last_report = time.monotonic()
            reported = 0
            # One batch is stored (on the database thread) while the next is fetched and decoded.
            storing: asyncio.Task | None = None
            taken = 0
            while not self._stop.is_set():
                want = self.batch if self.max_events is None else min(self.batch, self.max_events - taken)
                if want <= 0:
                    break
                try:
                    messages = await puller.fetch(want, FETCH_TIMEOUT)
                except Exception as exc:  # NATS unreachable / no quorum: the client reconnects meanwhile
                    logger.warning("ingest: fetching from %s failed (%s: %s); retrying.", self.config.stream,
                                   type(exc).__name__, exc)
                    await self._sleep(1.0)
                    messages = []
                now = time.monotonic()
                if storing is not None:
                    await storing
                    storing = None
                if messages:
                    last_message = now
                    taken += len(messages)
                    storing = asyncio.ensure_future(self._store(messages))
                elif self.idle_exit is not None and now - last_message >= self.idle_exit:
                    break
                if now - last_report >= self.report_every:
                    await self._report(js, self.stats.stored - reported, now - last_report)
                    last_report, reported = now, self.stats.stored
            if storing is not None:
                await storing
            await puller.give_back()
            await self._report(js, None, None)
            await client.flush()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            await client.close()
        return self.stats

    async def _store(self, messages: list[Any]) -> None:
        """Write the batch (one transaction), then acknowledge it; retry while the database refuses it."""
        events: list[SecurityEvent] = []
        good: list[Any] = []
        for message in messages:
            try:
                events.append(SecurityEvent.from_dict(orjson.loads(message.data)))
                good.append(message)
            except (ValueError, KeyError, TypeError) as exc:
                # Not an event (another publisher on the subject): logged with its position and never redelivered.
                metadata = message.metadata
                logger.error("ingest: message %s of stream %s is not an audit event (%s: %s); terminated.",
                             metadata.sequence.stream, metadata.stream, type(exc).__name__, exc)
                self.stats.rejected += 1
                await message.term()
        loop = asyncio.get_running_loop()
        attempt = 0
        while events:
            try:
                await loop.run_in_executor(self._db, self._write, events)
                break
            except Exception as exc:
                self.stats.db_failures += 1
                if attempt == 0 or attempt % 10 == 0:
                    logger.error("ingest: the database refused a batch of %d event(s) (%s: %s); retrying.",
                                 len(events), type(exc).__name__, exc)
                await loop.run_in_executor(self._db, self._close_connection)
                if self._stop is not None and self._stop.is_set():
                    # Asked to stop while the database is away: hand the batch back to the stream at once
                    # (another ingest, or the next start, stores it) rather than wait for the database.
                    await asyncio.gather(*(m.nak() for m in good), return_exceptions=True)
                    self.stats.returned += len(good)
                    logger.warning("ingest: stopping; %d message(s) not stored were returned to the stream.",
                                   len(good))
                    return
                # Tell JetStream these are still being worked on, so it does not hand them to another process.
                await asyncio.gather(*(m.in_progress() for m in good), return_exceptions=True)
                await self._sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
                attempt += 1
        for message in good:
            await message.ack()  # (buffered by the client, flushed together)
        self.stats.stored += len(events)
        self.stats.batches += 1
        if integrity_key() is not None and time.monotonic() - self._last_seal >= 1.0:
            self._last_seal = time.monotonic()
            await loop.run_in_executor(self._db, self._seal)

    def _write(self, events: list[SecurityEvent]) -> None:
        connections[self.alias].close_if_unusable_or_obsolete()
        self.sink.write(events)

    def _close_connection(self) -> None:
        """(On the database thread.) Drop the connection; the next attempt opens a new one."""
        try:
            connections[self.alias].close()
        except Exception:  # closing a connection that is already broken
            logger.debug("ingest: closing the database connection failed", exc_info=True)

    def _seal(self) -> None:
        try:
            seal_pending(self.alias)
        except Exception:
            logger.exception("ingest: could not seal audit rows into the integrity chain")

    async def _sleep(self, seconds: float, interruptible: bool = True) -> None:
        if not interruptible or self._stop is None:
            await asyncio.sleep(seconds)
            return
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    async def _set_up(self, js: Any) -> None:
        """The stream and the durable consumer, asked for again while the cluster cannot answer yet."""
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.errors import ServiceUnavailableError

        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                await ensure_stream(js, self.config)
                await self._ensure_consumer(js)
                return
            except (NatsTimeout, ServiceUnavailableError, TimeoutError) as exc:
                if time.monotonic() >= deadline or (self._stop is not None and self._stop.is_set()):
                    raise IngestError(f"JetStream did not answer for stream {self.config.stream} within "
                                      f"{STARTUP_SECONDS:.0f} s ({type(exc).__name__}: {exc})") from exc
                logger.warning("ingest: JetStream is not answering yet (%s); asking again.", type(exc).__name__)
                await self._sleep(1.0)

    async def _ensure_consumer(self, js: Any) -> None:
        """The durable pull consumer every ``ingest`` shares: created when missing (explicit acks)."""
        from nats.js import api
        from nats.js.errors import NotFoundError

        try:
            await js.consumer_info(self.config.stream, self.config.durable)
        except NotFoundError:
            await js.add_consumer(self.config.stream, api.ConsumerConfig(
                durable_name=self.config.durable, ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_SECONDS,
                max_ack_pending=max(10_000, self.batch * 20), filter_subject=self.config.subject,
            ))

    async def _report(self, js: Any, count: int | None, seconds: float | None) -> None:
        try:
            info = await js.consumer_info(self.config.stream, self.config.durable)
            self.stats.pending = info.num_pending + info.num_ack_pending
        except Exception as exc:  # reporting never stops ingesting
            logger.debug("ingest: consumer info failed (%s)", exc)
        lag = "unknown" if self.stats.pending is None else str(self.stats.pending)
        if count is None:
            self.report(f"ingest: stopped; {self.stats.stored} message(s) stored in {self.stats.batches} batch(es) "
                        f"({self.stats.rate:.0f}/s), lag {lag}.")
        else:
            rate = count / seconds if seconds else 0.0
            self.report(f"ingest: {self.stats.stored} message(s) stored ({rate:.0f}/s), lag {lag} message(s).")


class _Puller:
    """Fetches batches from the durable consumer with JetStream's pull requests (the documented API subject
    ``$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>``), the messages delivered to one inbox that a callback
    subscription collects. (nats-py's ``PullSubscription.fetch`` awaits each message with a timer of its
    own: several times the CPU per message.)"""

    def __init__(self, client: Any, stream: str, durable: str) -> None:
        self.client = client
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.inbox = client.new_inbox()
        self.buffer: list[Any] = []
        self.want = 0
        self.wake = asyncio.Event()

    async def start(self) -> None:
        await self.client.subscribe(self.inbox, cb=self._on_message)

    async def _on_message(self, msg: Any) -> None:
        headers = msg.headers
        if not msg.data and headers and "Status" in headers:
            # 404 no messages, 408 request expired, 409 (leadership change...): this request is over.
            if headers["Status"] != "100":  # (100: an idle heartbeat)
                self.wake.set()
            return
        self.buffer.append(msg)
        if len(self.buffer) >= self.want:
            self.wake.set()

    async def _request(self, want: int, request: dict[str, Any], wait: float) -> None:
        self.want = want
        self.wake.clear()
        await self.client.publish(self.subject, orjson.dumps(request), reply=self.inbox)
        try:
            await asyncio.wait_for(self.wake.wait(), wait)
        except TimeoutError:
            pass

    async def give_back(self) -> None:
        """Hand the messages delivered but not taken back to the stream (``nak``): redelivered at once."""
        left, self.buffer = self.buffer, []
        for msg in left:
            await msg.nak()
        if left:
            logger.warning("ingest: %d message(s) fetched but not stored were returned to the stream.", len(left))

    async def fetch(self, want: int, timeout: float) -> list[Any]:
        """Up to ``want`` messages: those available now, else whatever arrives within ``timeout`` seconds."""
        if len(self.buffer) < want:
            await self._request(want, {"batch": want - len(self.buffer), "no_wait": True}, timeout + 1.0)
        if not self.buffer:
            # Nothing now: wait for a full batch, or what came when the request expires (JetStream's 408).
            # (Returning at the first message would leave this request open at the server, taking messages
            # that other ingest processes, waiting with their own requests, should share.)
            await self._request(want, {"batch": want, "expires": int(timeout * 1e9)}, timeout + 1.0)
        taken, self.buffer = self.buffer[:want], self.buffer[want:]
        return taken


def run_ingest(
    batch: int | None = None,
    max_events: int | None = None,
    idle_exit: float | None = None,
    report_every: float = 10.0,
    report: Callable[[str], None] | None = None,
) -> IngestStats:
    """Run ``ingest`` with the project's ``AUDIT_STREAM`` into ``AUDIT_DATABASE_ALIAS``."""
    config = get_config()
    if config.stream is None:
        raise IngestError("AUDIT_STREAM is not set: there is no stream to ingest.")
    return Ingest(config.stream, config.database_alias, batch=batch, max_events=max_events, idle_exit=idle_exit,
                  report_every=report_every, report=report, partitioning=config.partitioning).run()
