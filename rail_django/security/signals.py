"""Public path of the signals rail-django sends; they are declared in :mod:`rail_django.signals`."""

from rail_django.signals import security_alert

__all__ = ["security_alert"]
