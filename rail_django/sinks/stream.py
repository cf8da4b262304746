"""Stream sink: each event becomes one message on a NATS JetStream stream (``AUDIT_STREAM``).

The message is the event's JSON line (:func:`~rail_django.sinks.base.event_json`, what the file sink
writes) with the header ``Nats-Msg-Id: <event_id>``: within the stream's ``duplicate_window`` JetStream
drops a message whose id it has already stored, so a batch re-sent after a lost ack is not stored twice
(and ``audit_management ingest`` inserts idempotently on ``event_id`` besides).

The sink runs in the background writer like the database sink it replaces. nats-py is asyncio: the sink
owns one event loop in a thread of its own; :meth:`StreamSink.write` hands a batch to that loop, which
publishes every event of it at once, each with a reply subject under one inbox the sink subscribes to
once (JetStream answers each message there with its ack), and waits until every ack arrived. That is
what nats-py's ``JetStreamContext.publish`` does per message, without a future, a timer and a request
per event: about five times the throughput. When any message is not acknowledged within
``publish_timeout`` (NATS down, no quorum for the replicated stream) ``write`` raises: the dispatcher
retries, and the journal keeps the batch and re-sends it when the stream is back.

nats-py is imported when the first batch is written, so a project without ``AUDIT_STREAM`` never loads it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from rail_django.conf.stream import StreamConfig
from rail_django.events.types import SecurityEvent
from rail_django.sinks.base import event_line

logger = logging.getLogger("rail_django.audit")

#: The header JetStream deduplicates on.
MSG_ID_HEADER = "Nats-Msg-Id"
#: JetStream's error code when the stream cannot take messages now (no quorum, no responders).
UNAVAILABLE_CODE = 503
#: Seconds after a batch found the stream unavailable during which ``write`` fails at once: the
#: dispatcher then tries a failed batch event by event, and each event must not wait a full timeout.
UNAVAILABLE_PAUSE = 1.0


async def _log_error(exc: Exception) -> None:
    logger.debug("NATS client: %s: %s", type(exc).__name__, exc)


async def connect(config: StreamConfig, name: str = "rail-django", wait: float | None = None) -> Any:
    """A nats-py client connected to one of ``config.servers``; it reconnects (to any node of the cluster)
    for as long as it lives. Raises ``TimeoutError`` when no server answered within ``wait`` seconds
    (default ``connect_timeout`` + 1)."""
    import nats

    return await asyncio.wait_for(
        nats.connect(
            list(config.servers), name=name, connect_timeout=config.connect_timeout, max_reconnect_attempts=-1,
            reconnect_time_wait=0.5, error_cb=_log_error,
        ),
        config.connect_timeout + 1.0 if wait is None else wait,
    )


async def ensure_stream(js: Any, config: StreamConfig) -> None:
    """Create the stream when it is missing (file storage, ``replicas``, ``duplicate_window``); when it
    exists with another duplicate window or without the subject, update it."""
    from nats.js import api
    from nats.js.errors import NotFoundError

    try:
        info = await js.stream_info(config.stream)
    except NotFoundError:
        await js.add_stream(api.StreamConfig(
            name=config.stream, subjects=[config.subject], storage=api.StorageType.FILE,
            num_replicas=config.replicas, duplicate_window=config.duplicate_window,
        ))
        logger.info("Created JetStream stream %s (subject %s, %d replica(s)).", config.stream, config.subject,
                    config.replicas)
        return
    current = info.config
    subjects = list(current.subjects or [])
    if config.subject not in subjects or current.duplicate_window != config.duplicate_window:
        if config.subject not in subjects:
            subjects.append(config.subject)
        current.subjects = subjects
        current.duplicate_window = config.duplicate_window
        await js.update_stream(current)


def journal_identity(config: StreamConfig) -> str:
    """The journal folder's name for this stream: events journaled for one stream are re-sent to it only."""
    identity = "|".join([config.backend, ",".join(sorted(config.servers)), config.stream, config.subject])
    return "stream-" + hashlib.sha256(identity.encode()).hexdigest()[:16]


def stream_journal_directory(base: Path, config: StreamConfig) -> Path:
    """Where the dispatcher journals events while the stream sink delivers them."""
    return Path(base) / journal_identity(config)


class MessageRefused(Exception):
    """JetStream refused a message for what it is (an error other than 503), not for being unavailable."""


def _about_the_message(exc: BaseException) -> bool:
    """True when JetStream refused this message, not because the stream is unavailable."""
    from nats.errors import MaxPayloadError

    return isinstance(exc, (MessageRefused, MaxPayloadError))


class _Batch:
    """The acks one batch waits for."""

    __slots__ = ("left", "errors", "duplicates", "done")

    def __init__(self, size: int, done: asyncio.Future) -> None:
        self.left = size
        self.errors: list[tuple[int, str]] = []
        self.duplicates = 0
        self.done = done


class StreamSink:
    """Publishes each batch to JetStream and waits for every ack (see the module docstring)."""

    name = "stream"

    def __init__(self, config: StreamConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._js: Any = None
        self._inbox = ""
        self._batches: dict[str, _Batch] = {}
        self._batch_numbers = 0
        #: Acks JetStream reported as duplicates (a resend it dropped), for the logs and tests.
        self.duplicates = 0
        self._unavailable_until = 0.0
        self._last_error = ""

    # -- the sink's own event loop ----------------------------------------------------
    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="rail-django-stream", daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

    def _run(self, coroutine: Any, timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._event_loop())
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    # -- Sink --------------------------------------------------------------------------
    def write(self, events: Sequence[SecurityEvent]) -> None:
        """Publish ``events``; returns once JetStream acknowledged each, raises otherwise."""
        if not events:
            return
        if time.monotonic() < self._unavailable_until:
            raise ConnectionError(f"JetStream stream {self.config.stream} is unavailable ({self._last_error})")
        timeout = self.config.connect_timeout + self.config.publish_timeout + 1.0
        try:
            self._run(self._publish([(str(e.event_id), event_line(e)[:-1]) for e in events]), timeout)
        except TimeoutError as exc:  # connecting (or the whole batch) took too long
            self._unavailable(f"no answer from {', '.join(self.config.servers)} within {timeout:g} s")
            raise ConnectionError(f"JetStream stream {self.config.stream}: {self._last_error}") from exc
        except Exception as exc:
            if not _about_the_message(exc):
                self._unavailable(f"{type(exc).__name__}: {exc}")
            raise

    def _unavailable(self, reason: str) -> None:
        self._last_error = reason
        self._unavailable_until = time.monotonic() + UNAVAILABLE_PAUSE

    async def _connected(self) -> Any:
        if self._client is not None and self._client.is_closed:  # gave up reconnecting: start afresh
            self._client = self._js = None
        if self._client is None:
            client = await connect(self.config)
            try:
                js = client.jetstream(timeout=self.config.publish_timeout)
                await ensure_stream(js, self.config)
                inbox = client.new_inbox()
                await client.subscribe(inbox + ".>", cb=self._on_ack)
            except BaseException:
                await client.close()
                raise
            self._client, self._js, self._inbox = client, js, inbox
        return self._client

    async def _on_ack(self, msg: Any) -> None:
        """One ack (or error) of JetStream, on the reply subject ``<inbox>.<batch>.<index>``."""
        _, _, tail = msg.subject.rpartition(self._inbox + ".")
        key, _, index = tail.partition(".")
        batch = self._batches.get(key)
        if batch is None:  # the batch already timed out
            return
        try:
            answer = orjson.loads(msg.data) if msg.data else None
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):  # a status message: no stream answered (503 no responders)
            status = (msg.headers or {}).get("Status", "")
            batch.errors.append((UNAVAILABLE_CODE if status in ("", "503") else int(status), "no responders"))
        elif "error" in answer:
            error = answer["error"] or {}
            batch.errors.append((int(error.get("code") or 0), str(error.get("description") or error)))
        elif answer.get("duplicate"):
            batch.duplicates += 1
        batch.left -= 1
        if batch.left == 0 and not batch.done.done():
            batch.done.set_result(None)

    async def _publish(self, messages: list[tuple[str, bytes]]) -> None:
        client = await self._connected()
        subject, stream = self.config.subject, self.config.stream
        self._batch_numbers += 1
        key = str(self._batch_numbers)
        batch = self._batches[key] = _Batch(len(messages), asyncio.get_running_loop().create_future())
        prefix = f"{self._inbox}.{key}."
        try:
            for index, (msg_id, payload) in enumerate(messages):
                await client.publish(subject, payload, reply=prefix + str(index),
                                     headers={MSG_ID_HEADER: msg_id})
            await asyncio.wait_for(asyncio.shield(batch.done), self.config.publish_timeout)
        except TimeoutError:
            raise ConnectionError(
                f"JetStream acknowledged {len(messages) - batch.left} of {len(messages)} event(s) on {stream} "
                f"within {self.config.publish_timeout:g} s"
            ) from None
        finally:
            del self._batches[key]
        self.duplicates += batch.duplicates
        if batch.errors:
            code, description = batch.errors[0]
            text = f"JetStream refused {len(batch.errors)} of {len(messages)} event(s) on {stream}: {code} {description}"
            if any(code == UNAVAILABLE_CODE for code, _ in batch.errors):
                raise ConnectionError(text)
            raise MessageRefused(text)

    def flush(self, timeout: float | None = None) -> bool:
        return True  # write() returns only once every message is acknowledged

    def close(self) -> None:
        """Close the connection and stop the sink's event loop."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None:
            return
        client, self._client, self._js = self._client, None, None
        if client is not None:
            try:
                asyncio.run_coroutine_threadsafe(client.close(), loop).result(5)
            except Exception:  # closing a connection that is already gone
                logger.debug("Closing the NATS connection failed", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(5)
        if not loop.is_running():
            loop.close()
