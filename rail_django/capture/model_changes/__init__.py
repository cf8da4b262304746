"""Model change capture: where ``data.create`` / ``data.update`` / ``data.delete`` / ``data.bulk`` events are born.

:func:`install` (called from ``ready()``) connects the signal receivers for
exactly the tracked models, and installs the bulk-write wrapper on every
database connection. Both follow the resolved tracking
(:mod:`rail_django.tracking.registry`) when settings change or ``track()``
is called later.
"""

from __future__ import annotations

import weakref
from typing import Any

from django.db import connections
from django.db.backends.signals import connection_created
from django.db.models import signals

from rail_django.capture.model_changes import bulk, m2m, saves
from rail_django.tracking.registry import Tracking, get_tracking, on_tracking_change, rebuild

_connected: list[tuple[Any, Any, str]] = []
_installed_on: weakref.WeakSet[Any] = weakref.WeakSet()


def _connect(signal: Any, receiver: Any, sender: Any, uid: str) -> None:
    signal.connect(receiver, sender=sender, weak=False, dispatch_uid=uid)
    _connected.append((signal, sender, uid))


def connect_receivers(tracking: Tracking) -> None:
    """Connect the receivers for the tracked models only (untracked models pay nothing)."""
    for signal, sender, uid in _connected:
        signal.disconnect(sender=sender, dispatch_uid=uid)
    _connected.clear()
    saves.set_tracking(tracking)
    m2m.set_tracking(tracking)
    bulk.set_tracking(tracking)
    if tracking.by_table:  # this thread's open connections; new ones get it from connection_created
        for connection in connections.all(initialized_only=True):
            install_on(connection)
    for model in tracking.specs:
        label = model._meta.label_lower
        _connect(signals.post_init, saves.on_post_init, model, f"rail_django.tracking.post_init.{label}")
        _connect(signals.pre_save, saves.on_pre_save, model, f"rail_django.tracking.pre_save.{label}")
        _connect(signals.post_save, saves.on_post_save, model, f"rail_django.tracking.post_save.{label}")
        _connect(signals.post_delete, saves.on_post_delete, model, f"rail_django.tracking.post_delete.{label}")
    for through in tracking.m2m_sides:
        label = through._meta.label_lower
        _connect(signals.m2m_changed, m2m.on_m2m_changed, through, f"rail_django.tracking.m2m.{label}")
    for through in tracking.through_sides:
        label = through._meta.label_lower
        _connect(signals.post_save, m2m.on_through_saved, through, f"rail_django.tracking.through_save.{label}")
        _connect(signals.post_delete, m2m.on_through_deleted, through, f"rail_django.tracking.through_delete.{label}")


def install_on(connection: Any, **kwargs: Any) -> None:
    """Put the bulk-write wrapper on ``connection`` (once per connection object).

    ``connection.execute_wrapper()`` is a context manager meant for a block of
    code; held open for the connection's life it would be popped by the exit
    of any block that a project opens before the connection's first query.
    The wrapper is therefore placed at the bottom of the connection's
    ``execute_wrappers`` stack, which every ``execute_wrapper()`` block pushes
    onto and pops from above it.
    """
    if connection in _installed_on or not bulk.tracks_any():
        return  # a project that tracks no model has no wrapper on its queries
    if bulk.capture_writes not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, bulk.capture_writes)
    _installed_on.add(connection)


def install() -> None:
    """Connect everything (``RailDjangoConfig.ready()``)."""
    from rail_django.tracking.options import on_registration

    connect_receivers(get_tracking())
    on_tracking_change(connect_receivers)
    on_registration(rebuild)
    connection_created.connect(install_on, dispatch_uid="rail_django.tracking.install_on")
    for connection in connections.all(initialized_only=True):
        install_on(connection)
