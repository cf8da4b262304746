"""What the writer does with journaled events when it is idle: replay dead processes', re-deliver the spool.

The sink is the primary one: the database sink, or the stream sink that replaces it (``AUDIT_STREAM``).
"""

from __future__ import annotations

import logging

from django.db import connections

from rail_django.delivery.health import SinkHealth
from rail_django.delivery.journal import Journal, replay_orphans
from rail_django.events.types import SecurityEvent
from rail_django.sinks import DatabaseSink, Sink

logger = logging.getLogger("rail_django.audit")


def recover_journals(journal: Journal | None, sink: Sink | None, batch_size: int) -> None:
    """Store what dead processes left in the journal directory."""
    if journal is None or sink is None:
        return
    try:
        count = replay_orphans(journal.directory, sink.write, batch_size)
    except Exception:
        logger.exception("Could not replay the audit journal in %s", journal.directory)
        return
    if count:
        logger.warning("Replayed %d audit event(s) left in the journal by a stopped process.", count)


def redeliver_spool(journal: Journal | None, sink: Sink | None, health: SinkHealth) -> None:
    """Write the spooled segments (events the database refused) again; stop at the first that fails."""
    if journal is None or sink is None:
        return
    for segment in journal.spooled():
        try:
            count = journal.redeliver(segment, lambda events: store_spooled(journal, sink, events))
        except Exception:
            if isinstance(sink, DatabaseSink):
                connections[sink.alias].close()
            return  # still down: try again when next idle
        health.succeeded(sink)
        logger.warning("Delivered %d spooled audit event(s) from %s.", count, segment.path.name)


def store_spooled(journal: Journal, sink: Sink, events: list[SecurityEvent]) -> None:
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
            "Audit event %s (%s) is refused by the %s sink (%s: %s); kept in %s.",
            event.event_id, event.event_type, sink.name, type(exc).__name__, exc, path,
        )
