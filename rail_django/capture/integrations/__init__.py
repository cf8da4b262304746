"""Integrations with other packages, each installed in ``ready()`` only when its package is installed."""

from __future__ import annotations

import importlib.util

from django.apps import apps


def install_integrations() -> list[str]:
    """Install the integrations whose packages are present; returns their names."""
    installed = []
    if importlib.util.find_spec("rest_framework") is not None:
        from rail_django.capture.integrations import drf

        drf.install()
        installed.append("rest_framework")
    if importlib.util.find_spec("celery") is not None:
        from rail_django.capture.integrations import celery

        celery.install()
        installed.append("celery")
    if apps.is_installed("hijack"):
        from rail_django.capture.integrations import hijack

        hijack.install()
        installed.append("hijack")
    return installed
