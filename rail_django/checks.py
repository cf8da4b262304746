"""System checks for rail-django settings (``rail_django.E0NN``).

Each check names the setting and what is allowed, so ``manage.py check``
(run by ``runserver``, ``migrate`` and the test runner) stops a bad
configuration before the first request.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.core.checks import Warning as CheckWarning

from rail_django.conf import DEFAULT_ALERT_THRESHOLDS, read_setting
from rail_django.events.types import Severity

_BOOLEAN_SETTINGS = {
    "GRAPHQL_ENABLE_AUDIT_LOGGING": "rail_django.E001",
    "AUDIT_STORE_IN_DATABASE": "rail_django.E002",
    "AUDIT_STORE_IN_FILE": "rail_django.E003",
    "SECURITY_EVENT_ASYNC": "rail_django.E013",
    "AUDIT_CAPTURE_CLIENT_IP": "rail_django.E016",
    "AUDIT_CAPTURE_USER_AGENT": "rail_django.E016",
}
_SEVERITIES = [s.value for s in Severity]


def _error(check_id: str, setting: str, value: Any, allowed: str) -> Error:
    return Error(f"{setting} is {value!r}; {allowed}.", hint=f"Fix {setting} in your settings.", id=check_id)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_booleans() -> list[Error]:
    return [
        _error(check_id, name, read_setting(name), "it must be True or False")
        for name, check_id in _BOOLEAN_SETTINGS.items()
        if not isinstance(read_setting(name), bool)
    ]


def _check_file() -> list[Error]:
    value = read_setting("AUDIT_LOG_FILE")
    if not isinstance(value, (str, Path)) or not str(value).strip():
        return [_error("rail_django.E004", "AUDIT_LOG_FILE", value, "it must be a file path (str or pathlib.Path)")]
    errors = []
    for name in ("AUDIT_LOG_FILE_MAX_BYTES", "AUDIT_LOG_FILE_BACKUP_COUNT"):
        number = read_setting(name)
        if not _is_int(number) or number < 0:
            errors.append(_error("rail_django.E004", name, number, "it must be a whole number >= 0"))
    return errors


def _check_webhook() -> list[Error]:
    errors = []
    url = read_setting("AUDIT_WEBHOOK_URL")
    if url is not None:
        parsed = urlparse(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
            errors.append(_error("rail_django.E005", "AUDIT_WEBHOOK_URL", url, "it must be None or an http(s) URL"))
    severity = read_setting("AUDIT_WEBHOOK_MIN_SEVERITY")
    if str(severity) not in _SEVERITIES:
        errors.append(_error("rail_django.E006", "AUDIT_WEBHOOK_MIN_SEVERITY", severity, f"it must be one of {_SEVERITIES}"))
    secret = read_setting("AUDIT_WEBHOOK_SECRET")
    if secret is not None:
        if not isinstance(secret, str) or not secret:
            errors.append(_error("rail_django.E007", "AUDIT_WEBHOOK_SECRET", "<hidden>", "it must be None or a non-empty string"))
        elif secret.startswith("whsec_"):
            try:
                base64.b64decode(secret[len("whsec_"):], validate=True)
            except (binascii.Error, ValueError):
                errors.append(_error("rail_django.E007", "AUDIT_WEBHOOK_SECRET", "whsec_<hidden>", "a 'whsec_' secret must be followed by base64"))
    for name in ("AUDIT_WEBHOOK_TIMEOUT", "AUDIT_WEBHOOK_BACKOFF"):
        number = read_setting(name)
        if isinstance(number, bool) or not isinstance(number, (int, float)) or number <= 0:
            errors.append(_error("rail_django.E005", name, number, "it must be a number of seconds > 0"))
    retries = read_setting("AUDIT_WEBHOOK_MAX_RETRIES")
    if not _is_int(retries) or not 0 <= retries <= 20:
        errors.append(_error("rail_django.E005", "AUDIT_WEBHOOK_MAX_RETRIES", retries, "it must be a whole number from 0 to 20"))
    return errors


def _check_retention() -> list[Error]:
    days = read_setting("AUDIT_RETENTION_DAYS")
    if not _is_int(days) or days < 1:
        return [_error("rail_django.E008", "AUDIT_RETENTION_DAYS", days, "it must be a whole number of days >= 1")]
    return []


def _check_thresholds() -> list[Error]:
    value = read_setting("AUDIT_ALERT_THRESHOLDS")
    if not isinstance(value, dict):
        return [_error("rail_django.E009", "AUDIT_ALERT_THRESHOLDS", value, "it must be a dict")]
    errors = []
    for key, number in value.items():
        if key not in DEFAULT_ALERT_THRESHOLDS:
            errors.append(_error("rail_django.E009", f"AUDIT_ALERT_THRESHOLDS[{key!r}]", number, f"the keys allowed are {sorted(DEFAULT_ALERT_THRESHOLDS)}"))
        elif not _is_int(number) or number < 1:
            errors.append(_error("rail_django.E009", f"AUDIT_ALERT_THRESHOLDS[{key!r}]", number, "it must be a whole number >= 1"))
    return errors


def _check_redaction() -> list[Error]:
    errors = []
    fields = read_setting("AUDIT_REDACTION_FIELDS")
    if not isinstance(fields, (list, tuple)) or not all(isinstance(f, str) and f for f in fields):
        errors.append(_error("rail_django.E010", "AUDIT_REDACTION_FIELDS", fields, "it must be a list of non-empty strings"))
    mask = read_setting("AUDIT_REDACTION_MASK")
    if not isinstance(mask, str) or not mask:
        errors.append(_error("rail_django.E011", "AUDIT_REDACTION_MASK", mask, "it must be a non-empty string"))
    return errors


def _check_proxies() -> list[Error]:
    proxies = read_setting("RAIL_DJANGO_TRUSTED_PROXIES")
    if not isinstance(proxies, (list, tuple)):
        return [_error("rail_django.E012", "RAIL_DJANGO_TRUSTED_PROXIES", proxies, "it must be a list of IP addresses or CIDRs")]
    errors = []
    for entry in proxies:
        try:
            ipaddress.ip_network(str(entry).strip(), strict=False)
        except ValueError:
            errors.append(_error("rail_django.E012", "RAIL_DJANGO_TRUSTED_PROXIES", entry, "each entry must be an IP address or CIDR such as '10.0.0.0/8'"))
    return errors


def _check_model_and_sizes() -> list[Error]:
    errors = []
    name = read_setting("AUDIT_EVENT_MODEL")
    from django.apps import apps

    try:
        apps.get_model(name)
    except (ValueError, LookupError, AttributeError):
        errors.append(_error("rail_django.E014", "AUDIT_EVENT_MODEL", name, "it must name an installed model as 'app_label.ModelName'"))
    for setting in ("AUDIT_QUEUE_SIZE", "AUDIT_BATCH_SIZE"):
        number = read_setting(setting)
        if not _is_int(number) or number < 1:
            errors.append(_error("rail_django.E015", setting, number, "it must be a whole number >= 1"))
    alias = read_setting("AUDIT_DATABASE_ALIAS")
    if alias not in settings.DATABASES:
        errors.append(_error("rail_django.E017", "AUDIT_DATABASE_ALIAS", alias, f"it must be one of DATABASES: {sorted(settings.DATABASES)}"))
    cache_alias = read_setting("AUDIT_CACHE_ALIAS")
    if cache_alias not in getattr(settings, "CACHES", {"default": {}}):
        errors.append(_error("rail_django.E018", "AUDIT_CACHE_ALIAS", cache_alias, "it must be one of CACHES"))
    return errors


def _check_reliability() -> list[Error]:
    errors = []
    journal = read_setting("AUDIT_JOURNAL_DIR")
    if journal is not None and (not isinstance(journal, (str, Path)) or not str(journal).strip()):
        errors.append(_error("rail_django.E050", "AUDIT_JOURNAL_DIR", journal, "it must be None (no journal) or a directory path"))
    segment = read_setting("AUDIT_JOURNAL_SEGMENT_BYTES")
    if not _is_int(segment) or segment < 4096:
        errors.append(_error("rail_django.E051", "AUDIT_JOURNAL_SEGMENT_BYTES", segment, "it must be a whole number >= 4096"))
    key = read_setting("AUDIT_INTEGRITY_KEY")
    if key is not None and (not isinstance(key, (str, bytes)) or len(key) < 16):
        errors.append(_error("rail_django.E052", "AUDIT_INTEGRITY_KEY", "<hidden>", "it must be None or a secret of at least 16 characters"))
    from rail_django.integrity.signing import setting_errors  # E053, E054 (h-integrity)

    errors += [_error(check_id, name, "<hidden>" if "KEY" in name else read_setting(name), allowed)
               for check_id, name, allowed in setting_errors()]
    return errors


@register("rail_django")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Validate every rail-django setting."""
    errors: list[Error] = []
    for check in (
        _check_booleans,
        _check_file,
        _check_webhook,
        _check_retention,
        _check_thresholds,
        _check_redaction,
        _check_proxies,
        _check_model_and_sizes,
        _check_reliability,
    ):
        errors.extend(check())
    return errors


@register("rail_django")
def check_lockout(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """``AUDIT_LOCKOUT_ENABLED`` (E030) and the backend it needs first in ``AUTHENTICATION_BACKENDS`` (E031)."""
    from rail_django.alerts.lockout import BACKEND_PATH

    enabled = read_setting("AUDIT_LOCKOUT_ENABLED")
    if not isinstance(enabled, bool):
        return [_error("rail_django.E030", "AUDIT_LOCKOUT_ENABLED", enabled, "it must be True or False")]
    backends = list(getattr(settings, "AUTHENTICATION_BACKENDS", []))
    if enabled and (not backends or backends[0] != BACKEND_PATH):
        return [
            Error(
                f"AUDIT_LOCKOUT_ENABLED is True but {BACKEND_PATH!r} is not the first entry of "
                f"AUTHENTICATION_BACKENDS ({backends!r}); locked-out logins would still be accepted.",
                hint=f"Put {BACKEND_PATH!r} first in AUTHENTICATION_BACKENDS.",
                id="rail_django.E031",
            )
        ]
    return []


@register("rail_django")
def check_admin(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """``AUDIT_ADMIN_ENABLED`` (E040) must be a boolean."""
    enabled = read_setting("AUDIT_ADMIN_ENABLED")
    if not isinstance(enabled, bool):
        return [_error("rail_django.E040", "AUDIT_ADMIN_ENABLED", enabled, "it must be True or False")]
    return []


# --- RAIL_DJANGO_GRAPHQL (E020-E029, W020) ------------------------------------

_GRAPHQL_SECTIONS = ("schema_settings", "security_settings")
_GRAPHQL_BOOLEANS = {
    ("schema_settings", "enable_extension_mutations"): "rail_django.E023",
    ("security_settings", "record_validation_failures"): "rail_django.E023",
    ("security_settings", "frontend_audit_allow_anonymous"): "rail_django.E023",
}
_EVENT_TYPE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")


def _graphql_name(section: str, key: str) -> str:
    return f'RAIL_DJANGO_GRAPHQL["{section}"]["{key}"]'


def _check_graphql_names(values: dict[str, Any]) -> list[Error]:
    errors = []
    fields = values.get("audited_query_fields", ())
    if not isinstance(fields, (list, tuple)) or not all(isinstance(f, str) and f.strip() for f in fields):
        errors.append(_error("rail_django.E021", _graphql_name("security_settings", "audited_query_fields"), fields,
                             "it must be a list of root field or operation names"))
    mapping = values.get("mutation_event_types", {})
    setting = _graphql_name("security_settings", "mutation_event_types")
    if not isinstance(mapping, dict):
        errors.append(_error("rail_django.E022", setting, mapping, "it must be a dict of mutation field name -> event type"))
    else:
        for name, event_type in mapping.items():
            if not isinstance(name, str) or not name.strip():
                errors.append(_error("rail_django.E022", setting, name, "each key must be a mutation field name"))
            elif not isinstance(event_type, str) or len(event_type) > 64 or not _EVENT_TYPE.match(event_type):
                errors.append(_error("rail_django.E022", f"{setting}[{name!r}]", event_type,
                                     "it must be an event type such as 'data.delete' (lower case, dotted, at most 64 characters)"))
    return errors


def _check_graphql_numbers(values: dict[str, Any]) -> list[Error]:
    errors = []
    limit = values.get("frontend_audit_rate_limit")
    if limit is not None and (not _is_int(limit) or limit < 1):
        errors.append(_error("rail_django.E024", _graphql_name("security_settings", "frontend_audit_rate_limit"), limit,
                             "it must be None (no limit) or a whole number of events >= 1"))
    window = values.get("frontend_audit_rate_window")
    if not _is_int(window) or window < 1:
        errors.append(_error("rail_django.E024", _graphql_name("security_settings", "frontend_audit_rate_window"), window,
                             "it must be a whole number of seconds >= 1"))
    size = values.get("frontend_audit_max_metadata_bytes")
    if not _is_int(size) or not 2 <= size <= 1_048_576:
        errors.append(_error("rail_django.E025", _graphql_name("security_settings", "frontend_audit_max_metadata_bytes"),
                             size, "it must be a whole number of bytes from 2 to 1048576"))
    return errors


@register("rail_django")
def check_graphql(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``RAIL_DJANGO_GRAPHQL``: its shape (E020), names (E021, E022), switches (E023), limits (E024, E025)."""
    from rail_django.conf import DEFAULT_GRAPHQL_SETTINGS, graphql_settings

    configured = read_setting("RAIL_DJANGO_GRAPHQL")
    if not isinstance(configured, dict):
        return [_error("rail_django.E020", "RAIL_DJANGO_GRAPHQL", configured, "it must be a dict of sections")]
    messages: list[CheckMessage] = []
    for section in _GRAPHQL_SECTIONS:
        value = configured.get(section, {})
        if not isinstance(value, dict):
            messages.append(_error("rail_django.E020", f'RAIL_DJANGO_GRAPHQL["{section}"]', value, "it must be a dict"))
            continue
        known = list(DEFAULT_GRAPHQL_SETTINGS[section])
        for key in value:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.8)
            if key not in known and close:
                messages.append(CheckWarning(
                    f"{_graphql_name(section, key)} is not a rail-django setting; did you mean {close[0]!r}?",
                    hint="Unknown keys are ignored.", id="rail_django.W020",
                ))
    if messages and any(isinstance(m, Error) for m in messages):
        return messages
    merged = graphql_settings()
    for (section, key), check_id in _GRAPHQL_BOOLEANS.items():
        if not isinstance(merged[section].get(key), bool):
            messages.append(_error(check_id, _graphql_name(section, key), merged[section].get(key), "it must be True or False"))
    messages += _check_graphql_names(merged["security_settings"])
    messages += _check_graphql_numbers(merged["security_settings"])
    return messages
