"""Public path of :class:`~rail_django.capture.middleware.SecurityContextMiddleware` (``.context``)."""
