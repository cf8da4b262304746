"""Django's ``django.security.*`` loggers -> ``security.suspicious.request``.

Django reports a CSRF failure on ``django.security.csrf`` and every
``SuspiciousOperation`` (``DisallowedHost``, ``SuspiciousFileOperation``,
``RequestDataTooBig``, ...) on ``django.security.<ExceptionClassName>``, with
the request in the record. :class:`SuspiciousRequestHandler` is added to the
``django.security`` logger in ``ready()`` beside whatever handlers the
project's ``LOGGING`` gives it (nothing is replaced); its records reach it by
propagation from the child loggers. ``additional_data.context.kind`` is the
logger's last part (``"csrf"``, ``"DisallowedHost"``, ...). Events are bounded
per client by ``AUDIT_CLIENT_EVENT_LIMIT``.
"""

from __future__ import annotations

import logging
from typing import Any

from rail_django.conf import get_config
from rail_django.events.types import EventType, Outcome

LOGGER_NAME = "django.security"
#: Longest log message kept as the event's error (the message quotes client input).
MAX_MESSAGE_LENGTH = 500


class SuspiciousRequestHandler(logging.Handler):
    """A logging handler that records each ``django.security.*`` record as an audit event."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record_suspicious(record)
        except Exception:  # a logging handler must never raise into the code that logged
            self.handleError(record)


def record_suspicious(record: logging.LogRecord) -> None:
    """Record one ``django.security.*`` log record (within the client's budget)."""
    if not get_config().enabled:
        return
    from rail_django.capture.limits import within_client_limit
    from rail_django.security.api import security

    kind = record.name.rsplit(".", 1)[-1] if record.name != LOGGER_NAME else "SuspiciousOperation"
    request: Any = getattr(record, "request", None)
    if request is not None and not hasattr(request, "META"):
        request = None
    if not within_client_limit(request, f"suspicious:{kind}"):
        return
    context: dict[str, Any] = {"kind": kind, "logger": record.name}
    status = getattr(record, "status_code", None)
    if isinstance(status, int):
        context["status_code"] = status
    security.emit(
        EventType.SECURITY_SUSPICIOUS_REQUEST,
        request=request,
        outcome=Outcome.BLOCKED,
        action=f"Suspicious request: {kind}",
        context=context,
        error=record.getMessage()[:MAX_MESSAGE_LENGTH],
    )


_handler: SuspiciousRequestHandler | None = None


def install() -> SuspiciousRequestHandler:
    """Add the handler to ``django.security`` once (idempotent); called from ``ready()``."""
    global _handler
    if _handler is None:
        _handler = SuspiciousRequestHandler()
    logger = logging.getLogger(LOGGER_NAME)
    if _handler not in logger.handlers:
        logger.addHandler(_handler)
    return _handler
