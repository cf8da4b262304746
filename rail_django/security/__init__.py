"""Public security API: ``from rail_django.security import security, EventType, Outcome, Severity``."""

from rail_django.capture.context import bind_actor, capture_context, propagate, use_context
from rail_django.events.types import EventType, Outcome, SecurityEvent, Severity
from rail_django.security.api import SecurityEventAPI, security

__all__ = [
    "EventType",
    "Outcome",
    "SecurityEvent",
    "SecurityEventAPI",
    "Severity",
    "bind_actor",
    "capture_context",
    "propagate",
    "security",
    "use_context",
]
