"""Public path of the request-context middleware (``MIDDLEWARE``); the code lives in :mod:`rail_django.capture.middleware`."""

from rail_django.capture.middleware import SecurityContextMiddleware

__all__ = ["SecurityContextMiddleware"]
