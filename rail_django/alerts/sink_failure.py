"""An audit sink that stops recording is itself an incident: one event and one ``security_alert``."""

from __future__ import annotations

import logging

from rail_django.delivery.dispatcher import dispatcher
from rail_django.events.types import EventType, Outcome, Severity
from rail_django.security.api import security
from rail_django.signals import security_alert

logger = logging.getLogger("rail_django.audit")


def raise_audit_failure_alert(sink_name: str, exc: BaseException, count: int) -> None:
    """An audit trail that stops recording is itself an incident (PCI DSS 10.7.2).

    Records one ``system.error`` event through the sinks that still work and
    sends ``security_alert``; called once per incident, not per event.
    """
    try:
        event = security.emit(
            EventType.SYSTEM_ERROR,
            outcome=Outcome.ERROR,
            severity=Severity.CRITICAL,
            action=f"Audit sink '{sink_name}' is failing",
            context={"sink": sink_name, "events_affected": count, "error_type": type(exc).__name__},
            error=str(exc),
            resource_type="audit_sink",
            resource_name=sink_name,
        )
        security_alert.send_robust(
            sender=dispatcher.__class__, event=event, rule="audit_sink_failure", key=sink_name, count=count, window=None,
        )
    except Exception:  # reporting a failure must never fail the caller
        logger.exception("Could not raise the alert for failing audit sink %r", sink_name)
