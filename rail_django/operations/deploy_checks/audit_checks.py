"""Audit-trail findings: sinks, table, file, webhook, retention, alerts, cache and proxies."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings
from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor

from rail_django.capture.client_ip import is_too_wide
from rail_django.conf import get_config, read_setting
from rail_django.operations.deploy_checks.findings import Finding
from rail_django.operations.deploy_checks.site_checks import is_public_key

#: Days below which retention is too short for most audit standards.
MIN_RETENTION_DAYS = 90
#: PCI DSS 10.5.1: twelve months of audit history.
PCI_RETENTION_DAYS = 365
#: Events sampled to spot a proxy that is not trusted.
PROXY_SAMPLE = 500


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check_enabled() -> list[Finding]:
    if not get_config().enabled:
        return [
            Finding(
                "audit.enabled", "critical", "GRAPHQL_ENABLE_AUDIT_LOGGING is False: nothing is recorded.",
                "Set GRAPHQL_ENABLE_AUDIT_LOGGING = True.",
            )
        ]
    config = get_config()
    sinks = [name for name, on in (("database", config.store_in_database), ("file", config.store_in_file),
                                   ("webhook", bool(config.webhook_url))) if on]
    if not sinks:
        return [
            Finding(
                "audit.sinks", "critical", "Audit logging is on but no sink is enabled: every event is dropped.",
                "Enable AUDIT_STORE_IN_DATABASE, AUDIT_STORE_IN_FILE or set AUDIT_WEBHOOK_URL.",
            )
        ]
    return [Finding("audit.enabled", "ok", f"Audit logging is on; sinks: {', '.join(sinks)}.", "")]


def check_database() -> list[Finding]:
    config = get_config()
    if not config.store_in_database:
        return []
    from rail_django.models import get_audit_event_model

    model = get_audit_event_model()
    connection = connections[config.database_alias]
    hint = f"Run: python manage.py migrate --database {config.database_alias}"
    try:
        tables = connection.introspection.table_names()
        executor = MigrationExecutor(connection)
        pending = [
            migration.name
            for migration, _ in executor.migration_plan(executor.loader.graph.leaf_nodes())
            if migration.app_label == model._meta.app_label
        ]
    except DatabaseError as exc:
        return [Finding("audit.database", "critical", f"The audit database {config.database_alias!r} cannot be read: {exc}", hint)]
    if model._meta.db_table not in tables:
        return [Finding("audit.database", "critical", f"The audit table {model._meta.db_table} does not exist.", hint)]
    if pending:
        return [Finding("audit.database", "critical", f"Audit migrations not applied: {', '.join(pending)}.", hint)]
    return [Finding("audit.database", "ok", f"The audit table {model._meta.db_table} is migrated.", "")]


def _writable(path: Path) -> bool:
    if path.exists():
        return path.is_file() and os.access(path, os.W_OK)
    parent = path.parent
    while not parent.exists():  # the sink creates missing directories
        parent = parent.parent
    return parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)


def check_file() -> list[Finding]:
    config = get_config()
    if not config.store_in_file:
        return []
    if not _writable(config.log_file):
        return [
            Finding(
                "audit.file", "critical", f"The audit log file {config.log_file} is not writable by this user.",
                "Fix the permissions or point AUDIT_LOG_FILE somewhere writable.",
            )
        ]
    return [Finding("audit.file", "ok", f"The audit log file {config.log_file} is writable.", "")]


def _is_loopback(host: str | None) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def check_webhook() -> list[Finding]:
    config = get_config()
    if not config.webhook_url:
        return [Finding("audit.webhook", "info", "No audit webhook is configured (AUDIT_WEBHOOK_URL).", "")]
    parsed = urlparse(config.webhook_url)
    findings = []
    if parsed.scheme != "https":
        severity = "info" if _is_loopback(parsed.hostname) else "warning"
        findings.append(
            Finding(
                "audit.webhook.https", severity, f"AUDIT_WEBHOOK_URL sends events in clear text ({parsed.scheme}://{parsed.hostname}).",
                "Use an https:// URL.",
            )
        )
    if not config.webhook_secret:
        findings.append(
            Finding(
                "audit.webhook.signed", "warning", "Webhook deliveries are not signed: the receiver cannot tell them from forgeries.",
                "Set AUDIT_WEBHOOK_SECRET (a 'whsec_' secret for Standard Webhooks receivers).",
            )
        )
    return findings or [Finding("audit.webhook", "ok", "The audit webhook uses https and signed deliveries.", "")]


def check_retention() -> list[Finding]:
    days = _int(read_setting("AUDIT_RETENTION_DAYS"))
    if days is None or days < 1:
        return []  # rail_django.E008 reports it
    hint = "Set AUDIT_RETENTION_DAYS and schedule 'manage.py audit_management cleanup' (docs/commands.md)."
    if days < MIN_RETENTION_DAYS:
        return [Finding("audit.retention", "warning", f"AUDIT_RETENTION_DAYS is {days}: below {MIN_RETENTION_DAYS} days, too short for most audit standards.", hint)]
    if days < PCI_RETENTION_DAYS:
        return [Finding("audit.retention", "info", f"AUDIT_RETENTION_DAYS is {days}: PCI DSS 10.5.1 asks for 12 months of audit history.", "Use 365 days or keep exports elsewhere if PCI DSS applies.")]
    if days > 3650:
        return [Finding("audit.retention", "info", f"AUDIT_RETENTION_DAYS is {days}: over ten years; data-protection law asks to keep personal data no longer than needed.", hint)]
    return [Finding("audit.retention", "ok", f"AUDIT_RETENTION_DAYS is {days}.", "")]


def check_thresholds() -> list[Finding]:
    thresholds = get_config().alert_thresholds
    per_ip, per_user, window = (_int(thresholds.get(k)) for k in ("failed_logins_per_ip", "failed_logins_per_user", "suspicious_activity_window"))
    if None in (per_ip, per_user, window):
        return []  # rail_django.E009 reports it
    hint = "Tune AUDIT_ALERT_THRESHOLDS (defaults: 10 per IP, 5 per user, 300 s)."
    problems = []
    if per_user > 20:
        problems.append(f"failed_logins_per_user={per_user} lets a password guesser try many times unnoticed")
    if per_ip > 100:
        problems.append(f"failed_logins_per_ip={per_ip} hides a brute force from one address")
    if per_user < 3 or per_ip < 3:
        problems.append("a threshold below 3 alerts on ordinary typing mistakes")
    if window < 60:
        problems.append(f"suspicious_activity_window={window}s misses a slow brute force")
    if problems:
        return [Finding("audit.alerts.thresholds", "warning", "Alert thresholds: " + "; ".join(problems) + ".", hint)]
    return [Finding("audit.alerts.thresholds", "ok", f"Alerts at {per_ip} failures per IP / {per_user} per username within {window}s.", "")]


def _has_timeouts(backend: str, options: dict) -> bool:
    keys = {str(k).lower() for k in options}
    if "redis" in backend.lower():
        return {"socket_timeout", "socket_connect_timeout"} <= keys
    return bool(keys & {"timeout", "connect_timeout"})


def check_alert_cache() -> list[Finding]:
    alias = get_config().cache_alias
    caches_setting = getattr(settings, "CACHES", {})
    if alias not in caches_setting:
        return [Finding("audit.alerts.cache", "critical", f"AUDIT_CACHE_ALIAS {alias!r} is not in CACHES.", "Name a cache from CACHES.")]
    backend = str(caches_setting[alias].get("BACKEND", ""))
    shared_hint = "Point AUDIT_CACHE_ALIAS at a Redis or Memcached cache shared by every worker."
    if backend.endswith("DummyCache"):
        return [Finding("audit.alerts.cache", "critical", f"Cache {alias!r} is a DummyCache: failed logins are never counted and no alert fires.", shared_hint)]
    if backend.endswith("LocMemCache"):
        return [Finding("audit.alerts.cache", "warning", f"Cache {alias!r} is per process: with N workers an attacker gets N times the threshold.", shared_hint)]
    findings = []
    if backend.endswith("FileBasedCache"):
        findings.append(Finding("audit.alerts.cache", "info", f"Cache {alias!r} is shared only by processes on this host.", shared_hint))
    elif ("redis" in backend.lower() or "memcache" in backend.lower()) and not _has_timeouts(backend, caches_setting[alias].get("OPTIONS", {})):
        findings.append(
            Finding(
                "audit.alerts.cache.timeout", "warning",
                f"Cache {alias!r} has no socket timeouts: a hung cache server can hold a failed login until the OS gives up.",
                'Add "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25} (docs/alerts.md).',
            )
        )
    from django.core.cache import caches

    try:
        caches[alias].get("rail_django:security_check")
    except Exception as exc:
        return [*findings, Finding("audit.alerts.cache", "critical", f"Cache {alias!r} does not answer ({type(exc).__name__}: {exc}); alerts count per process.", "Start the cache server or fix its LOCATION.")]
    return findings or [Finding("audit.alerts.cache", "ok", f"Cache {alias!r} ({backend.rsplit('.', 1)[-1]}) is shared and answers.", "")]


def check_integrity() -> list[Finding]:
    if not get_config().store_in_database:
        return []  # the chain covers stored rows only
    key = read_setting("AUDIT_INTEGRITY_KEY")
    if key is None:
        return [
            Finding(
                "audit.integrity", "warning",
                "AUDIT_INTEGRITY_KEY is not set: stored rows are not chained, so a row edited or deleted "
                "with SQL access goes unnoticed.",
                "Set AUDIT_INTEGRITY_KEY to a random secret of at least 16 characters, read from the environment "
                "(not source control), then schedule 'manage.py audit_management verify' (docs/integrity.md).",
            )
        ]
    if not isinstance(key, (str, bytes)) or len(key) < 16:
        return []  # rail_django.E052 reports it
    if is_public_key(key):
        return [
            Finding(
                "audit.integrity", "critical",
                "AUDIT_INTEGRITY_KEY is a placeholder value (it contains 'demo', 'insecure' or 'change-me'): "
                "whoever knows it can rewrite the chain.",
                "Use a random secret, e.g. from django.core.management.utils.get_random_secret_key().",
            )
        ]
    return [Finding("audit.integrity", "ok", "AUDIT_INTEGRITY_KEY is set: stored rows are chained (check them with audit_management verify).", "")]


#: Where a reverse proxy usually connects from: loopback, RFC 1918, carrier-grade NAT, IPv6 unique-local.
#: (Not ``ipaddress.is_private``, which also counts the documentation ranges.)
PROXY_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "::1/128", "fc00::/7")
)


def _private(ip: str | None) -> bool:
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return False
    return any(address.version == net.version and address in net for net in PROXY_NETWORKS)


def _too_wide(entry: object) -> bool:
    try:
        return is_too_wide(ipaddress.ip_network(str(entry).strip(), strict=False))
    except ValueError:
        return False  # rail_django.E012 reports it


def check_proxies() -> list[Finding]:
    proxies = read_setting("RAIL_DJANGO_TRUSTED_PROXIES") or []
    wide = [p for p in proxies if _too_wide(p)] if isinstance(proxies, (list, tuple)) else []
    if wide:
        return [Finding("audit.proxies", "critical", f"RAIL_DJANGO_TRUSTED_PROXIES trusts {', '.join(map(str, wide))}: any client on the internet can forge its address (rail_django.E019).",
                        "List only your proxies' addresses (at most a /8 for IPv4, a /16 for IPv6 outside fc00::/7).")]
    if proxies:
        return [Finding("audit.proxies", "ok", f"RAIL_DJANGO_TRUSTED_PROXIES lists {len(proxies)} proxy address(es).", "")]
    hint = "List your load balancer / reverse proxy addresses in RAIL_DJANGO_TRUSTED_PROXIES (IPs or CIDRs)."
    proxy_settings = [name for name in ("SECURE_PROXY_SSL_HEADER", "USE_X_FORWARDED_HOST", "USE_X_FORWARDED_PORT") if getattr(settings, name, None)]
    if proxy_settings:
        return [Finding("audit.proxies", "warning", f"A reverse proxy is in front ({', '.join(proxy_settings)} set) but RAIL_DJANGO_TRUSTED_PROXIES is empty: events record the proxy's address, not the client's, and X-Forwarded-For is ignored.", hint)]
    config = get_config()
    if config.store_in_database:
        from rail_django.operations.common import stored_events

        try:
            recent = list(stored_events().exclude(client_ip=None).order_by("-timestamp").values_list("client_ip", flat=True)[:PROXY_SAMPLE])
        except DatabaseError:
            recent = []
        if len(recent) >= 20 and all(_private(ip) for ip in recent):
            return [Finding("audit.proxies", "warning", f"The last {len(recent)} events all come from private addresses (e.g. {recent[0]}): a proxy probably forwards X-Forwarded-For that is not trusted.", hint)]
    return [Finding("audit.proxies", "ok", "No reverse proxy detected; client addresses are taken from REMOTE_ADDR.", "")]


def check_partitions() -> list[Finding]:
    """AUDIT_PARTITIONING: the table is partitioned, partitions are made ahead, the default partition is empty."""
    config = get_config()
    if not config.partitioning or not config.store_in_database:
        return []
    from rail_django import partitioning as parts
    from rail_django.operations.common import now
    from rail_django.operations.partitions import audit_table, configured

    alias, table = config.database_alias, audit_table()
    hint = "Run: python manage.py audit_management partitions convert (see docs/scaling.md#partitions)"
    try:
        if not parts.is_partitioned(alias, table):
            return [Finding("audit.partitions", "warning", f"AUDIT_PARTITIONING is set but {table} is not partitioned.", hint)]
        found = parts.partitions(alias, table)
        strays = parts.default_partition_rows(alias, table)
    except DatabaseError as exc:
        return [Finding("audit.partitions", "critical", f"The audit partitions cannot be read: {exc}", "")]
    if strays:
        return [Finding(
            "audit.partitions", "warning",
            f"{strays} audit rows are in the default partition {table}{parts.DEFAULT_SUFFIX} (timestamps no partition "
            "covers); retention cannot drop them with a partition.",
            "Run: python manage.py audit_management partitions premake (it moves them into new partitions).",
        )]
    settings = configured()
    covered = max((p.upper for p in found if p.upper is not None), default=None)
    if settings is not None and (covered is None or covered <= now()):
        return [Finding(
            "audit.partitions", "warning", "No partition covers the current time: new rows go to the default partition.",
            "Run: python manage.py audit_management partitions premake",
        )]
    return [Finding("audit.partitions", "ok", f"{table} has {len(found)} partitions, up to {covered}; the default partition is empty.", "")]


CHECKS = [
    check_enabled,
    check_database,
    check_partitions,
    check_file,
    check_webhook,
    check_retention,
    check_integrity,
    check_thresholds,
    check_alert_cache,
    check_proxies,
]
