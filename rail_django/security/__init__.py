"""Public security API: ``from rail_django.security import security, EventType, Outcome, Severity``."""

from rail_django.security.api import SecurityEventAPI, security
from rail_django.security.context import bind_actor, capture_context, propagate, use_context
from rail_django.security.events import EventType, Outcome, SecurityEvent, Severity

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
