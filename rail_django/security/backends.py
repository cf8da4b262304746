"""Public path of the lockout backend (``AUTHENTICATION_BACKENDS``); the code lives in :mod:`rail_django.alerts.lockout`."""

from rail_django.alerts.lockout import LockoutBackend

__all__ = ["LockoutBackend"]
