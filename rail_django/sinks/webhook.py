"""Webhook sink: POST each event as JSON, signed per the Standard Webhooks spec.

Deliveries always run on the sink's own background worker (also with
``SECURITY_EVENT_ASYNC=False``), so a slow or dead receiver never adds latency
to a request. Each delivery has a timeout and is retried with exponential
backoff on connection errors, timeouts, 429 and 5xx. Redirects are never
followed: a 3xx answer is a failed delivery, so an event and its signature
never reach a URL other than ``AUDIT_WEBHOOK_URL``. What is finally
undelivered is counted and logged on ``rail_django.audit``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Sequence

import requests

from rail_django.delivery.worker import BackgroundWorker
from rail_django.events.types import SecurityEvent, Severity, coerce_severity
from rail_django.sinks.base import event_json

logger = logging.getLogger("rail_django.audit")


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
    """POSTs events at or above ``min_severity`` to ``url``, one request per event, from its own worker."""

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
        self._count_lock = threading.Lock()
        self._session: requests.Session | None = None
        self._worker: BackgroundWorker[SecurityEvent] = BackgroundWorker(
            "rail-django-audit-webhook", self._deliver_all, queue_size=queue_size, on_start=self._open_session,
        )

    def write(self, events: Sequence[SecurityEvent]) -> None:
        for event in events:
            if coerce_severity(event.severity, Severity.INFO).rank < self.min_rank:
                continue
            if not self._worker.put(event):
                self._count(delivered=False)
                logger.error(
                    "Audit webhook queue is full; event %s (%s) was not sent to %s",
                    event.event_id, event.event_type, self.url,
                )

    def _open_session(self) -> None:
        self._session = requests.Session()

    def _deliver_all(self, events: list[SecurityEvent]) -> None:
        for event in events:
            ok = False
            try:
                ok = self._deliver(event)
            except Exception:  # never let one event stop the others
                logger.exception("Audit webhook delivery of %s crashed", event.event_id)
            self._count(delivered=ok)

    def _count(self, delivered: bool) -> None:
        with self._count_lock:
            if delivered:
                self.delivered += 1
            else:
                self.undelivered += 1

    def _deliver(self, event: SecurityEvent) -> bool:
        body = event_json(event).encode()
        msg_id = f"msg_{event.event_id.hex}"
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            try:
                response = self._post(body, msg_id)
            except requests.RequestException as exc:
                last_problem = type(exc).__name__
                continue
            if response.status_code < 300:
                return True
            last_problem = f"HTTP {response.status_code}"
            if 300 <= response.status_code < 400:
                last_problem += " (redirects are not followed)"
                break
            if response.status_code != 429 and response.status_code < 500:
                break  # the receiver refuses this payload: retrying will not help
        logger.error(
            "Audit webhook gave up on event %s (%s) after %d attempt(s): %s",
            event.event_id, event.event_type, attempt + 1, last_problem,
        )
        return False

    def _post(self, body: bytes, msg_id: str) -> requests.Response:
        headers = {"Content-Type": "application/json", "webhook-id": msg_id}
        if self.secret:
            timestamp = int(time.time())
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = sign(self.secret, msg_id, timestamp, body.decode())
        session = self._session or requests.Session()
        # Never follow a redirect: the event and its signature go to the configured URL or nowhere.
        return session.post(self.url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False)

    def flush(self, timeout: float | None = None) -> bool:
        return self._worker.flush(timeout)

    def close(self) -> None:
        self._worker.stop(timeout=0)
