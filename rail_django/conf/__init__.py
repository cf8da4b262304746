"""The one accessor for rail-django's settings.

Every setting is declared once in :mod:`rail_django.conf.registry`. The
values are read from ``django.conf.settings`` once and cached in a
:class:`SecurityConfig`; the cache is dropped whenever Django's
``setting_changed`` signal fires (``override_settings`` in tests; connected
in ``RailDjangoConfig.ready()``), so the hot path never calls
``getattr(settings, ...)``.

A value that fails its validation never stops start-up: ``manage.py check``
reports it (``rail_django.E0NN``) and, until it is fixed, the configuration
uses that one setting's default and logs a warning.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from rail_django.conf.graphql import DEFAULT_GRAPHQL_SETTINGS, GraphQLConfig, normalize_graphql_name
from rail_django.conf.registry import DEFAULT_ALERT_THRESHOLDS, DEFAULT_REDACTION_FIELDS, REGISTRY, SETTINGS, Setting
from rail_django.conf.stream import StreamConfig
from rail_django.conf.validators import Problem

__all__ = [
    "DEFAULTS", "DEFAULT_ALERT_THRESHOLDS", "DEFAULT_GRAPHQL_SETTINGS", "DEFAULT_REDACTION_FIELDS", "GraphQLConfig",
    "REGISTRY", "SecurityConfig", "Setting", "StreamConfig", "get_config", "get_graphql_config", "graphql_settings",
    "normalize_graphql_name", "on_config_change", "problems_of", "read_setting", "reset_config",
]

logger = logging.getLogger("rail_django.conf")

#: Every setting rail-django reads, with its default. A callable default is
#: evaluated when the configuration is loaded.
DEFAULTS: dict[str, Any] = {setting.name: setting.default for setting in SETTINGS}


def read_setting(name: str) -> Any:
    """Return the project's value of ``name`` or rail-django's default (unvalidated)."""
    if hasattr(settings, name):
        return getattr(settings, name)
    return REGISTRY[name].default_value()


def problems_of(setting: Setting, value: Any) -> list[Problem]:
    """What is wrong with ``value`` for ``setting`` (``[]`` when fine); never raises."""
    try:
        return setting.validate(value)
    except Exception as exc:  # a validator meeting a value nobody foresaw: a problem, not a crash
        return [Problem(f"it could not be validated ({type(exc).__name__}: {exc})")]


def valid_value(setting: Setting) -> Any:
    """The setting's value converted for the runtime, or its default when the value is invalid (logged)."""
    value = read_setting(setting.name)
    errors = [p for p in problems_of(setting, value) if not p.warning]
    if errors:
        logger.warning(
            "%s is invalid (%s: %s); using its default until it is fixed (see manage.py check).",
            setting.name, errors[0].check_id or setting.check_id, errors[0].allowed or errors[0].message,
        )
        value = setting.default_value()
    return setting.convert(value)


def _secret() -> Any:
    return field(repr=False)  # never in a repr, a log line or a traceback


@dataclass(frozen=True)
class SecurityConfig:
    """The resolved rail-django settings, read once per configuration change.

    One attribute per setting of :mod:`rail_django.conf.registry` that names
    one; each value has passed its validation (else it is the default).
    """

    enabled: bool
    async_delivery: bool
    capture_client_ip: bool
    capture_user_agent: bool
    event_model: str
    admin_enabled: bool
    store_in_database: bool
    database_alias: str
    store_in_file: bool
    log_file: Path
    log_file_max_bytes: int
    log_file_backup_count: int
    webhook_url: str | None
    webhook_min_severity: str
    webhook_secret: str | None = _secret()
    webhook_timeout: float
    webhook_max_retries: int
    webhook_backoff: float
    queue_size: int
    batch_size: int
    #: ``AUDIT_DELIVERY``: ``"thread"`` (in-process writer) or ``"drain"`` (``audit_management drain``).
    delivery: str
    #: ``AUDIT_STREAM`` (None: off): the stream sink replaces the database sink.
    stream: StreamConfig | None
    journal_dir: Path | None
    journal_segment_bytes: int
    #: ``AUDIT_INTEGRITY_KEY``: the HMAC chain's secret.
    integrity_key: str | bytes | None = _secret()
    #: ``AUDIT_INTEGRITY_SIGNING_KEY`` as PEM bytes (read from the file when the setting is a path).
    integrity_signing_key: bytes | None = _secret()
    integrity_checkpoint_seconds: float
    redaction_fields: tuple[str, ...]
    redaction_mask: str
    trusted_proxies: tuple[str, ...]
    #: ``"trusted_proxies"``, ``"any"`` or ``"none"``.
    accept_request_id_from: str
    retention_days: int
    #: ``AUDIT_PARTITIONING``: None, or ``{"interval": ..., "premake": ...}``.
    partitioning: dict[str, Any] | None
    #: The defaults with the project's keys over them.
    alert_thresholds: dict[str, int]
    cache_alias: str
    lockout_enabled: bool
    #: ``"always"``, ``"known"`` or ``"hash"``.
    attempted_username: str

    @classmethod
    def from_settings(cls) -> SecurityConfig:
        """Build the configuration from ``django.conf.settings``, one registered setting per attribute."""
        return cls(**{s.attribute: valid_value(s) for s in SETTINGS if s.attribute is not None})


_config: SecurityConfig | None = None
_config_lock = threading.Lock()
_listeners: list[Callable[[], None]] = []


def get_config() -> SecurityConfig:
    """Return the cached :class:`SecurityConfig`, loading it on first use."""
    global _config
    config = _config
    if config is None:
        from django.apps import apps

        if not apps.ready:  # some values (the event model) can only be checked once apps are loaded
            return SecurityConfig.from_settings()
        with _config_lock:
            if _config is None:
                _config = SecurityConfig.from_settings()
            config = _config
    return config


def on_config_change(callback: Callable[[], None]) -> None:
    """Register ``callback()`` to run when settings change (sinks rebuild)."""
    _listeners.append(callback)


def reset_config(**_: Any) -> None:
    """Drop the cached configuration; the next read reloads it."""
    global _config
    with _config_lock:
        _config = None
    for callback in list(_listeners):
        callback()


#: Settings outside the registry whose change alters a default or a validation.
_RELATED_SETTINGS = frozenset({"BASE_DIR", "DATABASES", "CACHES", "AUTHENTICATION_BACKENDS", "INSTALLED_APPS"})


def on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver (connected in ``RailDjangoConfig.ready()``)."""
    if setting in REGISTRY or setting in _RELATED_SETTINGS:
        reset_config()


# --- RAIL_DJANGO_GRAPHQL -----------------------------------------------------


def graphql_settings() -> dict[str, dict[str, Any]]:
    """``RAIL_DJANGO_GRAPHQL`` merged section by section over :data:`DEFAULT_GRAPHQL_SETTINGS`.

    Keys rail-django does not know are kept (the setting may hold other
    libraries' keys); a section that is not a dict is ignored here and
    reported by ``manage.py check``.
    """
    from rail_django.conf.graphql import merge_graphql_settings

    return merge_graphql_settings(read_setting("RAIL_DJANGO_GRAPHQL"))


_graphql_config: GraphQLConfig | None = None


def get_graphql_config() -> GraphQLConfig:
    """The cached :class:`GraphQLConfig` (dropped with the main configuration)."""
    global _graphql_config
    config = _graphql_config
    if config is None:
        config = _graphql_config = GraphQLConfig.from_value(read_setting("RAIL_DJANGO_GRAPHQL"))
    return config


def _reset_graphql_config() -> None:
    global _graphql_config
    _graphql_config = None


on_config_change(_reset_graphql_config)
