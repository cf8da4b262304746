"""Signals rail-django sends."""

from django.dispatch import Signal

#: Sent when an alert threshold is reached. Keyword arguments: ``event``
#: (the ``security.alert`` :class:`~rail_django.events.types.SecurityEvent`),
#: ``rule``, ``key``, ``count`` and ``window``.
security_alert = Signal()
