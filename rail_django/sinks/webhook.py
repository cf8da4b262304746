"""Webhook sink: POST each event as JSON, signed per the Standard Webhooks spec.

Deliveries always run on the sink's own thread (also with
``SECURITY_EVENT_ASYNC=False``), so a slow or dead receiver never adds latency
to a request. Each delivery has a timeout and is retried with exponential
backoff on connection errors, timeouts, 429 and 5xx; what is finally
undelivered is counted and logged on ``rail_django.audit``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import queue
import threading
import time
from collections.abc import Sequence

import requests

from rail_django.events.types import SecurityEvent, Severity, coerce_severity
from rail_django.sinks.base import event_json

logger = logging.getLogger("rail_django.audit")

_STOP = object()


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: base64 after ``whsec_``, else its UTF-8 bytes."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):])
    return secret.encode("utf-8")


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` header value for one delivery."""
    payload = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(signing_key(secret), payload, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookSink:
    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str | None = None,
        min_severity: str = "warning",
        timeout: float = 5.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        queue_size: int = 10_000,
    ) -> None:
        self.url = url
        self.secret = secret
        self.min_rank = coerce_severity(min_severity, Severity.WARNING).rank
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.delivered = 0
        self.undelivered = 0
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._pending = 0
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._session: requests.Session | None = None

    def write(self, events: Sequence[SecurityEvent]) -> None:
        wanted = [e for e in events if coerce_severity(e.severity, Severity.INFO).rank >= self.min_rank]
        if not wanted:
            return
        self._ensure_thread()
        for event in wanted:
            with self._idle:
                self._pending += 1
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                self._done(delivered=False)
                logger.error(
                    "Audit webhook queue is full; event %s (%s) was not sent to %s",
                    event.event_id, event.event_type, self.url,
                )

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="rail-django-audit-webhook", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        self._session = requests.Session()
        while True:
            event = self._queue.get()
            if event is _STOP:
                return
            ok = False
            try:
                ok = self._deliver(event)
            except Exception:  # never let one event kill the worker
                logger.exception("Audit webhook delivery of %s crashed", event.event_id)
            self._done(delivered=ok)

    def _done(self, delivered: bool) -> None:
        with self._idle:
            if delivered:
                self.delivered += 1
            else:
                self.undelivered += 1
            self._pending -= 1
            if self._pending <= 0:
                self._idle.notify_all()

    def _deliver(self, event: SecurityEvent) -> bool:
        body = event_json(event)
        msg_id = f"msg_{event.event_id.hex}"
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            headers = {"Content-Type": "application/json", "webhook-id": msg_id}
            if self.secret:
                timestamp = int(time.time())
                headers["webhook-timestamp"] = str(timestamp)
                headers["webhook-signature"] = sign(self.secret, msg_id, timestamp, body)
            try:
                response = self._session.post(self.url, data=body.encode(), headers=headers, timeout=self.timeout)
            except requests.RequestException as exc:
                last_problem = type(exc).__name__
                continue
            if response.status_code < 300:
                return True
            last_problem = f"HTTP {response.status_code}"
            if response.status_code != 429 and response.status_code < 500:
                break  # the receiver refuses this payload: retrying will not help
        logger.error(
            "Audit webhook gave up on event %s (%s) after %d attempt(s): %s",
            event.event_id, event.event_type, attempt + 1, last_problem,
        )
        return False

    def flush(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending > 0:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
