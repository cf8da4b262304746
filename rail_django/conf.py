"""Every rail-django setting, its default, and the one accessor that reads them.

Settings are read from ``django.conf.settings`` once and cached in a
:class:`SecurityConfig`; the cache is dropped whenever Django's
``setting_changed`` signal fires (``override_settings`` in tests), so the hot
path never calls ``getattr(settings, ...)``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

DEFAULT_REDACTION_FIELDS: tuple[str, ...] = (
    "password",
    "token",
    "secret",
    "key",
    "credential",
    "authorization",
    "cookie",
    "session",
    "ssn",
    "credit_card",
    "cvv",
)

DEFAULT_ALERT_THRESHOLDS: dict[str, int] = {
    "failed_logins_per_ip": 10,
    "failed_logins_per_user": 5,
    "suspicious_activity_window": 300,
}


def _base_dir() -> Path:
    base_dir = getattr(settings, "BASE_DIR", None)
    return Path(base_dir if base_dir is not None else Path.cwd())


def _default_log_file() -> Path:
    return _base_dir() / "logs" / "audit.log"


def _default_journal_dir() -> Path:
    return _base_dir() / "logs" / "audit-journal"


#: ``RAIL_DJANGO_GRAPHQL``: each section a project gives is merged over these keys.
DEFAULT_GRAPHQL_SETTINGS: dict[str, dict[str, Any]] = {
    "schema_settings": {
        "enable_extension_mutations": True,
    },
    "security_settings": {
        "audited_query_fields": (),
        "mutation_event_types": {},
        "record_validation_failures": False,
        "frontend_audit_allow_anonymous": False,
        "frontend_audit_rate_limit": 60,
        "frontend_audit_rate_window": 60,
        "frontend_audit_max_metadata_bytes": 8192,
    },
}


#: Every setting rail-django reads, with its default. A callable default is
#: evaluated when the configuration is loaded.
DEFAULTS: dict[str, Any] = {
    "GRAPHQL_ENABLE_AUDIT_LOGGING": True,
    "AUDIT_STORE_IN_DATABASE": True,
    "AUDIT_STORE_IN_FILE": True,
    "AUDIT_LOG_FILE": _default_log_file,
    "AUDIT_LOG_FILE_MAX_BYTES": 0,
    "AUDIT_LOG_FILE_BACKUP_COUNT": 5,
    "AUDIT_WEBHOOK_URL": None,
    "AUDIT_WEBHOOK_SECRET": None,
    "AUDIT_WEBHOOK_MIN_SEVERITY": "warning",
    "AUDIT_WEBHOOK_TIMEOUT": 5.0,
    "AUDIT_WEBHOOK_MAX_RETRIES": 3,
    "AUDIT_WEBHOOK_BACKOFF": 0.5,
    "AUDIT_RETENTION_DAYS": 90,
    "AUDIT_ALERT_THRESHOLDS": lambda: dict(DEFAULT_ALERT_THRESHOLDS),
    "AUDIT_CACHE_ALIAS": "default",
    "AUDIT_REDACTION_FIELDS": lambda: list(DEFAULT_REDACTION_FIELDS),
    "AUDIT_REDACTION_MASK": "***REDACTED***",
    "AUDIT_EVENT_MODEL": "rail_django.AuditEventModel",
    "AUDIT_DATABASE_ALIAS": "default",
    "AUDIT_CAPTURE_CLIENT_IP": True,
    "AUDIT_CAPTURE_USER_AGENT": True,
    "AUDIT_QUEUE_SIZE": 10_000,
    "AUDIT_BATCH_SIZE": 500,
    "RAIL_DJANGO_TRUSTED_PROXIES": lambda: [],
    "SECURITY_EVENT_ASYNC": True,
    "AUDIT_JOURNAL_DIR": _default_journal_dir,
    "AUDIT_JOURNAL_SEGMENT_BYTES": 64 * 1024 * 1024,
    "AUDIT_INTEGRITY_KEY": None,
    "RAIL_DJANGO_GRAPHQL": lambda: {section: dict(values) for section, values in DEFAULT_GRAPHQL_SETTINGS.items()},
    "AUDIT_LOCKOUT_ENABLED": False,
    "AUDIT_ADMIN_ENABLED": True,
    # --- Model change tracking (rail_django.tracking; docs/tracking.md) -------------------
    # {"app_label.ModelName": {"fields": [...], "exclude": [...], "mask": [...], "m2m": [...]}};
    # read by rail_django.tracking.registry, validated by rail_django.tracking.checks (E070-E074).
    "AUDIT_TRACKED_MODELS": lambda: {},
    # --- end of model change tracking --------------------------------------------------
}


def read_setting(name: str) -> Any:
    """Return the project's value of ``name`` or rail-django's default."""
    if hasattr(settings, name):
        return getattr(settings, name)
    default = DEFAULTS[name]
    return default() if callable(default) else default


@dataclass(frozen=True)
class SecurityConfig:
    """The resolved rail-django settings, read once per configuration change.

    Values are taken as given; :mod:`rail_django.checks` reports invalid ones
    at start-up (``manage.py check``), and the runtime falls back to the
    default for a value it cannot use rather than failing a request.
    """

    enabled: bool
    store_in_database: bool
    store_in_file: bool
    log_file: Path
    log_file_max_bytes: int
    log_file_backup_count: int
    webhook_url: str | None
    webhook_secret: str | None
    webhook_min_severity: str
    webhook_timeout: float
    webhook_max_retries: int
    webhook_backoff: float
    retention_days: int
    alert_thresholds: dict[str, int]
    cache_alias: str
    redaction_fields: tuple[str, ...]
    redaction_mask: str
    event_model: str
    database_alias: str
    capture_client_ip: bool
    capture_user_agent: bool
    queue_size: int
    batch_size: int
    trusted_proxies: tuple[str, ...]
    async_delivery: bool
    journal_dir: Path | None
    journal_segment_bytes: int

    @classmethod
    def from_settings(cls) -> SecurityConfig:
        """Build the configuration from ``django.conf.settings``."""
        thresholds = dict(DEFAULT_ALERT_THRESHOLDS)
        configured = read_setting("AUDIT_ALERT_THRESHOLDS")
        if isinstance(configured, dict):
            thresholds.update(configured)
        fields = read_setting("AUDIT_REDACTION_FIELDS")
        proxies = read_setting("RAIL_DJANGO_TRUSTED_PROXIES")
        return cls(
            enabled=bool(read_setting("GRAPHQL_ENABLE_AUDIT_LOGGING")),
            store_in_database=bool(read_setting("AUDIT_STORE_IN_DATABASE")),
            store_in_file=bool(read_setting("AUDIT_STORE_IN_FILE")),
            log_file=Path(read_setting("AUDIT_LOG_FILE")),
            log_file_max_bytes=int(read_setting("AUDIT_LOG_FILE_MAX_BYTES") or 0),
            log_file_backup_count=int(read_setting("AUDIT_LOG_FILE_BACKUP_COUNT") or 0),
            webhook_url=read_setting("AUDIT_WEBHOOK_URL") or None,
            webhook_secret=read_setting("AUDIT_WEBHOOK_SECRET") or None,
            webhook_min_severity=str(read_setting("AUDIT_WEBHOOK_MIN_SEVERITY")),
            webhook_timeout=float(read_setting("AUDIT_WEBHOOK_TIMEOUT")),
            webhook_max_retries=int(read_setting("AUDIT_WEBHOOK_MAX_RETRIES")),
            webhook_backoff=float(read_setting("AUDIT_WEBHOOK_BACKOFF")),
            retention_days=int(read_setting("AUDIT_RETENTION_DAYS")),
            alert_thresholds=thresholds,
            cache_alias=str(read_setting("AUDIT_CACHE_ALIAS")),
            redaction_fields=tuple(str(f).lower() for f in (fields or ()) if f),
            redaction_mask=str(read_setting("AUDIT_REDACTION_MASK")),
            event_model=str(read_setting("AUDIT_EVENT_MODEL")),
            database_alias=str(read_setting("AUDIT_DATABASE_ALIAS")),
            capture_client_ip=bool(read_setting("AUDIT_CAPTURE_CLIENT_IP")),
            capture_user_agent=bool(read_setting("AUDIT_CAPTURE_USER_AGENT")),
            queue_size=max(1, int(read_setting("AUDIT_QUEUE_SIZE"))),
            batch_size=max(1, int(read_setting("AUDIT_BATCH_SIZE"))),
            trusted_proxies=tuple(proxies or ()),
            async_delivery=bool(read_setting("SECURITY_EVENT_ASYNC")),
            journal_dir=Path(journal) if (journal := read_setting("AUDIT_JOURNAL_DIR")) else None,
            journal_segment_bytes=max(4096, int(read_setting("AUDIT_JOURNAL_SEGMENT_BYTES"))),
        )


_config: SecurityConfig | None = None
_config_lock = threading.Lock()
_listeners: list = []


def get_config() -> SecurityConfig:
    """Return the cached :class:`SecurityConfig`, loading it on first use."""
    global _config
    config = _config
    if config is None:
        with _config_lock:
            if _config is None:
                _config = SecurityConfig.from_settings()
            config = _config
    return config


def on_config_change(callback) -> None:
    """Register ``callback()`` to run when settings change (sinks rebuild)."""
    _listeners.append(callback)


def reset_config(**_: Any) -> None:
    """Drop the cached configuration; the next read reloads it."""
    global _config
    with _config_lock:
        _config = None
    for callback in list(_listeners):
        callback()


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in DEFAULTS or setting in ("BASE_DIR", "RAIL_DJANGO_GRAPHQL"):
        reset_config()


setting_changed.connect(_setting_changed, dispatch_uid="rail_django.conf.setting_changed")


# --- RAIL_DJANGO_GRAPHQL -----------------------------------------------------


def normalize_graphql_name(name: Any) -> str:
    """``"createOrder"``, ``"create_order"`` and ``"CreateOrder"`` all become ``"createorder"``."""
    return str(name).replace("_", "").lower()


def graphql_settings() -> dict[str, dict[str, Any]]:
    """``RAIL_DJANGO_GRAPHQL`` merged section by section over :data:`DEFAULT_GRAPHQL_SETTINGS`.

    Keys rail-django does not know are kept (the setting may hold other
    libraries' keys); a section that is not a dict is ignored here and
    reported by ``manage.py check``.
    """
    configured = read_setting("RAIL_DJANGO_GRAPHQL")
    merged = {section: dict(values) for section, values in DEFAULT_GRAPHQL_SETTINGS.items()}
    if isinstance(configured, dict):
        for section, values in configured.items():
            if isinstance(values, dict):
                merged.setdefault(section, {}).update(values)
    return merged


@dataclass(frozen=True)
class GraphQLConfig:
    """The resolved ``RAIL_DJANGO_GRAPHQL`` values the GraphQL layer reads on its hot path."""

    extension_mutations: bool
    audited_queries: frozenset[str]
    mutation_event_types: dict[str, str]
    record_validation_failures: bool
    frontend_allow_anonymous: bool
    frontend_rate_limit: int | None
    frontend_rate_window: int
    frontend_max_metadata_bytes: int

    @classmethod
    def from_settings(cls) -> GraphQLConfig:
        merged = graphql_settings()
        schema, security = merged["schema_settings"], merged["security_settings"]
        defaults = DEFAULT_GRAPHQL_SETTINGS["security_settings"]

        def number(key: str, minimum: int) -> int:
            value = security.get(key)
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
            return value if ok else defaults[key]

        audited = security.get("audited_query_fields")
        mapping = security.get("mutation_event_types")
        rate_limit = security.get("frontend_audit_rate_limit")
        return cls(
            extension_mutations=schema.get("enable_extension_mutations") is not False,
            audited_queries=frozenset(
                normalize_graphql_name(name) for name in (audited if isinstance(audited, (list, tuple, set)) else ())
            ),
            mutation_event_types={
                normalize_graphql_name(name): str(event_type)
                for name, event_type in (mapping.items() if isinstance(mapping, dict) else ())
            },
            record_validation_failures=security.get("record_validation_failures") is True,
            frontend_allow_anonymous=security.get("frontend_audit_allow_anonymous") is True,
            frontend_rate_limit=None if rate_limit is None else number("frontend_audit_rate_limit", 1),
            frontend_rate_window=number("frontend_audit_rate_window", 1),
            frontend_max_metadata_bytes=number("frontend_audit_max_metadata_bytes", 2),
        )


_graphql_config: GraphQLConfig | None = None


def get_graphql_config() -> GraphQLConfig:
    """The cached :class:`GraphQLConfig` (dropped with the main configuration)."""
    global _graphql_config
    config = _graphql_config
    if config is None:
        config = _graphql_config = GraphQLConfig.from_settings()
    return config


def _reset_graphql_config() -> None:
    global _graphql_config
    _graphql_config = None


on_config_change(_reset_graphql_config)
