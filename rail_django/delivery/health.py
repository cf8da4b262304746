"""Sink health: a failing sink is reported once per incident, and its recovery once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from rail_django.events.types import SecurityEvent

logger = logging.getLogger("rail_django.audit")

#: Called once per sink incident as ``handler(sink_name, exc, events_affected)``; the app wires
#: :func:`rail_django.alerts.sink_failure.raise_audit_failure_alert` here in ``ready()``, so the
#: delivery layer never calls back into the public API that sits above it.
SinkFailureHandler = Callable[[str, BaseException, int], None]


class SinkHealth:
    """Reports a sink's failures once per incident, and its recovery."""

    def __init__(self, on_incident: SinkFailureHandler | None = None) -> None:
        self.failing: dict[str, int] = {}
        self._lock = threading.Lock()
        self.on_incident = on_incident

    def failed(self, sink: Any, events: Sequence[SecurityEvent], exc: BaseException) -> None:
        """``sink`` (anything with a ``name``) could not take ``events``."""
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

    def succeeded(self, sink: Any) -> None:
        if sink.name not in self.failing:
            return
        with self._lock:
            lost = self.failing.pop(sink.name, 0)
        logger.warning("Audit sink %r recovered; %d event(s) were not written to it meanwhile.", sink.name, lost)


class JournalName:
    """The journal as :class:`SinkHealth` names it."""

    name = "journal"


JOURNAL = JournalName()
