"""What an event is: its types, how one is built from the captured context, and redaction."""

from rail_django.events.types import EventType, Outcome, SecurityEvent, Severity

__all__ = ["EventType", "Outcome", "SecurityEvent", "Severity"]
