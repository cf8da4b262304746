"""Every rail-django setting, declared once.

Each :class:`Setting` gives the name, the default, the validation, the check
id and the line of ``docs/configuration.md``; from this list come the
defaults (:data:`rail_django.conf.DEFAULTS`), the typed configuration
(:class:`rail_django.conf.SecurityConfig`), the system checks
(:mod:`rail_django.checks`) and the settings tables of the docs
(``python -m rail_django.conf.docs``). A new setting is one more entry here
(and its attribute on ``SecurityConfig`` when the runtime reads it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rail_django.conf import validators as v
from rail_django.conf.graphql import default_graphql_settings, validate_graphql
from rail_django.conf.stream import stream_config, validate_stream
from rail_django.events.types import Severity

DEFAULT_REDACTION_FIELDS: tuple[str, ...] = (
    "password", "token", "secret", "key", "credential", "authorization", "cookie", "session", "ssn", "credit_card", "cvv",
    # Beyond the contract's list: more spellings of the same secrets.
    "passwd", "passphrase", "passcode", "pwd", "card_number", "cvc",
    # "=": whole key segments only (pin_code, userPin; not shipping, passenger, footprint).
    "=pin", "=pass", "=otp",
)
DEFAULT_ALERT_THRESHOLDS: dict[str, int] = {
    "failed_logins_per_ip": 10,
    "failed_logins_per_user": 5,
    "suspicious_activity_window": 300,
}
#: ``AUDIT_ATTEMPTED_USERNAME`` values (see docs/alerts.md).
ATTEMPTED_USERNAME_MODES = ("always", "known", "hash")
#: ``RAIL_DJANGO_ACCEPT_REQUEST_ID_FROM`` values.
REQUEST_ID_SOURCES = ("trusted_proxies", "any", "none")
#: ``AUDIT_DELIVERY`` values: the in-process writer thread, or the per-host ``audit_management drain``.
DELIVERY_MODES = ("thread", "drain")
#: ``AUDIT_PARTITIONING["interval"]`` values (see docs/scaling.md).
PARTITION_INTERVALS = ("day", "week", "month")
#: The backend ``AUDIT_LOCKOUT_ENABLED`` needs first (``rail_django.alerts.lockout.BACKEND_PATH``).
LOCKOUT_BACKEND_PATH = "rail_django.security.backends.LockoutBackend"
#: Sections of docs/configuration.md, in order ("graphql" is documented in docs/graphql.md).
SECTIONS = ("Recording", "Sinks", "Durability and tamper evidence", "Redaction", "Client IP and proxies",
            "Retention and alerts", "Security events with no code, and lockout")


def _partitioning(value: Any) -> list[v.Problem]:
    """``None``, or ``{"interval": "day" | "week" | "month", "premake": N}`` on a PostgreSQL audit database."""
    from django.conf import settings

    if value is None:
        return []
    if not isinstance(value, dict) or not set(value) <= {"interval", "premake"}:
        return [v.Problem('it must be None or {"interval": "day" | "week" | "month", "premake": N}')]
    problems = []
    if value.get("interval", "month") not in PARTITION_INTERVALS:
        problems.append(v.Problem(
            f"it must be one of {list(PARTITION_INTERVALS)}", subject="AUDIT_PARTITIONING['interval']",
            shown=value.get("interval"),
        ))
    premake = value.get("premake", 4)
    if not v.is_int(premake) or premake < 1:
        problems.append(v.Problem(
            "it must be a whole number >= 1 (intervals created ahead)", subject="AUDIT_PARTITIONING['premake']",
            shown=premake, check_id="rail_django.E091",
        ))
    alias = getattr(settings, "AUDIT_DATABASE_ALIAS", "default")
    engine = str(getattr(settings, "DATABASES", {}).get(alias, {}).get("ENGINE", ""))
    if "postgresql" not in engine and "postgis" not in engine:
        problems.append(v.Problem(
            "", check_id="rail_django.E092", hint="Remove AUDIT_PARTITIONING, or keep the audit table on PostgreSQL.",
            message=f"AUDIT_PARTITIONING is set but the audit database {alias!r} is {engine or 'not configured'}; "
            "partitioning needs PostgreSQL.",
        ))
    return problems


def _delivery(value: Any) -> list[v.Problem]:
    """``"thread"`` or ``"drain"`` (E110); ``"drain"`` needs the journal (E111): it is what the drain reads."""
    from django.conf import settings

    if not (isinstance(value, str) and value in DELIVERY_MODES):
        return [v.Problem(f"it must be one of {list(DELIVERY_MODES)}")]
    if value == "drain" and getattr(settings, "AUDIT_JOURNAL_DIR", "") is None:
        return [v.Problem(
            "", check_id="rail_django.E111", hint="Set AUDIT_JOURNAL_DIR to a directory the drain can read.",
            message='AUDIT_DELIVERY is "drain" but AUDIT_JOURNAL_DIR is None: the drain reads the journal, so '
            "events would be written by the in-process writer instead.",
        )]
    return []


def _base_dir() -> Path:
    from django.conf import settings

    base_dir = getattr(settings, "BASE_DIR", None)
    return Path(base_dir if base_dir is not None else Path.cwd())


def default_log_file() -> Path:
    return _base_dir() / "logs" / "audit.log"


def default_journal_dir() -> Path:
    return _base_dir() / "logs" / "audit-journal"


def _same(value: Any) -> Any:
    return value


def _lockout(value: Any) -> list[v.Problem]:
    """A bool (E030); when True the lockout backend must come first (E031)."""
    from django.conf import settings

    if not isinstance(value, bool):
        return [v.Problem("it must be True or False")]
    backends = list(getattr(settings, "AUTHENTICATION_BACKENDS", []))
    if value and (not backends or backends[0] != LOCKOUT_BACKEND_PATH):
        return [v.Problem(
            "", check_id="rail_django.E031", hint=f"Put {LOCKOUT_BACKEND_PATH!r} first in AUTHENTICATION_BACKENDS.",
            message=f"AUDIT_LOCKOUT_ENABLED is True but {LOCKOUT_BACKEND_PATH!r} is not the first entry of "
            f"AUTHENTICATION_BACKENDS ({backends!r}); locked-out logins would still be accepted.",
        )]
    return []


@dataclass(frozen=True)
class Setting:
    """One setting: what it is called, defaults to, accepts and does."""

    name: str
    #: The value, or a callable that returns it (evaluated when the configuration is loaded).
    default: Any
    #: The id ``manage.py check`` reports a bad value with.
    check_id: str
    #: The settings table the docs list it in (one of :data:`SECTIONS`, or "graphql").
    section: str
    #: Its line in the docs: what it does.
    doc: str
    #: The value -> its problems (``[]`` when fine).
    validate: v.Validator
    #: The :class:`~rail_django.conf.SecurityConfig` attribute (``None``: not part of it).
    attribute: str | None = None
    #: A valid value -> the attribute's value.
    convert: Callable[[Any], Any] = _same
    #: How the docs show a computed default (markdown), instead of the value.
    default_doc: str | None = None
    #: Other ids its checks report (documented beside ``check_id``).
    other_ids: tuple[str, ...] = ()

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default


def _lockout_rule(name: str) -> v.Validator:
    """The lockout rules are parsed as a whole (they refer to each other): this setting's part of the report."""

    def validate(value: Any) -> list[v.Problem]:
        from rail_django.alerts.lockout_rules import parse_rules

        return [v.Problem(problem, message=f"{name}: {problem}.") for setting, problem in parse_rules()[1] if setting == name]

    return validate


def _setting(name: str, default: Any, check_id: str, section: str, doc: str, validate: v.Validator, **kw: Any) -> Setting:
    return Setting(name, default, check_id, section, doc, validate, **kw)


_R, _S, _D, _X, _P, _A, _L = SECTIONS
_SEVERITIES = [s.value for s in Severity]

SETTINGS: tuple[Setting, ...] = (
    # -- Recording --
    _setting("GRAPHQL_ENABLE_AUDIT_LOGGING", True, "rail_django.E001", _R, "master switch: when `False` nothing at all is recorded (`emit`, auth signals, GraphQL, the frontend mutation)", v.boolean(), attribute="enabled"),
    _setting("SECURITY_EVENT_ASYNC", True, "rail_django.E013", _R, "deliver through a background writer (batched, off the request thread); `False` writes the sinks before `emit` returns (in async code events are always queued: `await security.aflush()`)", v.boolean(), attribute="async_delivery"),
    _setting("AUDIT_CAPTURE_CLIENT_IP", True, "rail_django.E016", _R, "`False` stores no client IP and no peer address (privacy)", v.boolean(), attribute="capture_client_ip"),
    _setting("AUDIT_CAPTURE_USER_AGENT", True, "rail_django.E016", _R, "`False` stores no user agent (privacy)", v.boolean(), attribute="capture_user_agent"),
    _setting("AUDIT_EVENT_MODEL", "rail_django.AuditEventModel", "rail_django.E014", _R, "the model `get_audit_event_model()` returns and the database sink writes", v.event_model, attribute="event_model"),
    _setting("AUDIT_ADMIN_ENABLED", True, "rail_django.E040", _R, "register the read-only audit admin and the security dashboard on Django's default admin site (see [admin](admin.md))", v.boolean(), attribute="admin_enabled"),
    # -- Sinks --
    _setting("AUDIT_STORE_IN_DATABASE", True, "rail_django.E002", _S, "the database sink (`AuditEventModel` rows)", v.boolean(), attribute="store_in_database"),
    _setting("AUDIT_DATABASE_ALIAS", "default", "rail_django.E017", _S, "the database the rows are written to", v.alias_in("DATABASES", {}), attribute="database_alias"),
    _setting("AUDIT_STORE_IN_FILE", True, "rail_django.E003", _S, "the JSON-lines file sink, one event per line", v.boolean(), attribute="store_in_file"),
    _setting("AUDIT_LOG_FILE", default_log_file, "rail_django.E004", _S, "the file; its directory is created", v.path(), attribute="log_file", convert=Path, default_doc='`BASE_DIR / "logs" / "audit.log"` (the current directory when `BASE_DIR` is not set)'),
    _setting("AUDIT_LOG_FILE_MAX_BYTES", 0, "rail_django.E004", _S, "rotate the file when it would grow past this size; `0` leaves rotation to logrotate", v.integer(0), attribute="log_file_max_bytes"),
    _setting("AUDIT_LOG_FILE_BACKUP_COUNT", 5, "rail_django.E004", _S, "rotated files kept (`audit.log.1` … `.5`)", v.integer(0), attribute="log_file_backup_count"),
    _setting("AUDIT_WEBHOOK_URL", None, "rail_django.E005", _S, "POST each event at or above `AUDIT_WEBHOOK_MIN_SEVERITY` as JSON to this http(s) URL, off the request thread", v.webhook_url, attribute="webhook_url", convert=lambda url: url or None),
    _setting("AUDIT_WEBHOOK_MIN_SEVERITY", "warning", "rail_django.E006", _S, "the lowest severity sent to the webhook", v.choice(_SEVERITIES), attribute="webhook_min_severity", convert=str),
    _setting("AUDIT_WEBHOOK_SECRET", None, "rail_django.E007", _S, "sign deliveries per the Standard Webhooks spec (see [delivery](delivery.md#webhook)); a `whsec_<base64>` secret or any string", v.webhook_secret, attribute="webhook_secret", convert=lambda secret: secret or None),
    _setting("AUDIT_WEBHOOK_TIMEOUT", 5.0, "rail_django.E005", _S, "seconds per delivery attempt", v.seconds(), attribute="webhook_timeout", convert=float),
    _setting("AUDIT_WEBHOOK_MAX_RETRIES", 3, "rail_django.E005", _S, "retries after the first attempt (0–20)", v.integer(0, 20), attribute="webhook_max_retries"),
    _setting("AUDIT_WEBHOOK_BACKOFF", 0.5, "rail_django.E005", _S, "seconds before the first retry, doubled each time", v.seconds(), attribute="webhook_backoff", convert=float),
    _setting("AUDIT_QUEUE_SIZE", 10_000, "rail_django.E015", _S, "events the background writer (and the webhook sender) may hold; when full, the emitting thread writes itself — nothing is dropped", v.integer(1), attribute="queue_size"),
    _setting("AUDIT_BATCH_SIZE", 500, "rail_django.E015", _S, "most events written in one database insert / file write", v.integer(1), attribute="batch_size"),
    _setting("AUDIT_DELIVERY", "thread", "rail_django.E110", _S, 'who writes the sinks when `SECURITY_EVENT_ASYNC` is on: `"thread"`, a background writer in each process; `"drain"`, the request only appends the event to the journal and `audit_management drain` (one process per host) delivers it (see [delivery](delivery.md#drain-delivery-by-a-separate-process)); E111 when the journal is off', _delivery, attribute="delivery", other_ids=("rail_django.E111",)),
    _setting("AUDIT_STREAM", None, "rail_django.E100", _S, 'the streaming tier: `{"backend": "nats", "servers": [...], "stream": "AUDIT", "subject": "audit.events"}` publishes each event to NATS JetStream instead of writing the database, and `audit_management ingest` stores the stream in the database (see [scaling](scaling.md)); optional keys `replicas` (1), `duplicate_window` (120 s), `durable` ("rail-django-ingest"), `batch` (1000), `connect_timeout` (2 s), `publish_timeout` (5 s)', validate_stream, attribute="stream", convert=stream_config, other_ids=("rail_django.E101", "rail_django.E102", "rail_django.E103", "rail_django.E104", "rail_django.E105", "rail_django.E106")),
    # -- Durability and tamper evidence --
    _setting("AUDIT_JOURNAL_DIR", default_journal_dir, "rail_django.E050", _D, "with the background writer, each event is appended here before `emit` returns, so a killed worker loses nothing (see [delivery](delivery.md#the-journal-nothing-lost-when-a-worker-dies)); `None` turns the journal off", v.path(optional=True), attribute="journal_dir", convert=lambda d: Path(d) if d else None, default_doc='`BASE_DIR / "logs" / "audit-journal"`'),
    _setting("AUDIT_JOURNAL_SEGMENT_BYTES", 64 * 1024 * 1024, "rail_django.E051", _D, "a journal segment larger than this is closed and a new one started", v.integer(4096), attribute="journal_segment_bytes", default_doc="`67108864` (64 MiB)"),
    _setting("AUDIT_INTEGRITY_KEY", None, "rail_django.E052", _D, "a secret (at least 16 characters) that turns on the keyed hash chain over stored rows; verify with `audit_management verify` (see [integrity](integrity.md))", v.integrity_key, attribute="integrity_key"),
    _setting("AUDIT_INTEGRITY_SIGNING_KEY", None, "rail_django.E053", _D, "an Ed25519 private key (unencrypted PKCS#8 PEM: the text, bytes, or a file path; `openssl genpkey -algorithm ed25519`) that signs chain heads and checkpoints, so `audit_management verify --public-key` needs no secret", v.signing_key, attribute="integrity_signing_key", convert=lambda key: v.ed25519_pem(key) if key is not None else None),
    _setting("AUDIT_INTEGRITY_CHECKPOINT_SECONDS", 60, "rail_django.E054", _D, "at most how often (seconds; 0 turns it off) the sealer publishes a signed `system.integrity.checkpoint` of the chain's head to every sink", v.seconds(allow_zero=True), attribute="integrity_checkpoint_seconds", convert=float),
    # -- Redaction --
    _setting("AUDIT_REDACTION_FIELDS", lambda: list(DEFAULT_REDACTION_FIELDS), "rail_django.E010", _X, "keys matched case-insensitively as substrings, recursively through dicts, lists and tuples, have their values masked; the same words mark `word=value` / `word: value` secrets inside text", v.name_list, attribute="redaction_fields", convert=lambda fields: tuple(str(f).lower() for f in fields)),
    _setting("AUDIT_REDACTION_MASK", "***REDACTED***", "rail_django.E011", _X, "the mask", v.non_empty_text, attribute="redaction_mask"),
    # -- Client IP and proxies --
    _setting("RAIL_DJANGO_TRUSTED_PROXIES", lambda: [], "rail_django.E012", _P, "IPs/CIDRs of your reverse proxies and load balancers; a network wider than /8 (IPv4) or /16 (IPv6, outside fc00::/7) is refused", v.trusted_proxies, attribute="trusted_proxies", convert=lambda proxies: tuple(str(p).strip() for p in proxies), other_ids=("rail_django.E019",)),
    _setting("RAIL_DJANGO_ACCEPT_REQUEST_ID_FROM", "trusted_proxies", "rail_django.E060", _P, 'whose `X-Request-ID` / `X-Correlation-ID` becomes the correlation id: `"trusted_proxies"` (a peer in `RAIL_DJANGO_TRUSTED_PROXIES`), `"any"` peer, or `"none"` (always a new id)', v.choice(REQUEST_ID_SOURCES), attribute="accept_request_id_from"),
    # -- Retention and alerts --
    _setting("AUDIT_RETENTION_DAYS", 90, "rail_django.E008", _A, "what `audit_management cleanup` deletes when `--days` is not given", v.integer(1, unit="of days"), attribute="retention_days"),
    _setting("AUDIT_PARTITIONING", None, "rail_django.E090", _A, 'PostgreSQL only: `{"interval": "month", "premake": 4}` (`interval`: `"day"`, `"week"` or `"month"`) range-partitions the audit table by `timestamp` once `audit_management partitions convert` has run; partitions are created `premake` intervals ahead and retention drops whole partitions (see [scaling](scaling.md#partitions))', _partitioning, attribute="partitioning", other_ids=("rail_django.E091", "rail_django.E092")),
    _setting("AUDIT_ALERT_THRESHOLDS", lambda: dict(DEFAULT_ALERT_THRESHOLDS), "rail_django.E009", _A, "failed logins per client IP / per attempted username within the window (seconds) that raise one `security.alert`", v.thresholds(DEFAULT_ALERT_THRESHOLDS), attribute="alert_thresholds", convert=lambda given: {**DEFAULT_ALERT_THRESHOLDS, **given}),
    _setting("AUDIT_CACHE_ALIAS", "default", "rail_django.E018", _A, "the cache that counts failed logins (use a shared cache such as Redis with several processes)", v.alias_in("CACHES", {"default": {}}), attribute="cache_alias"),
    _setting("AUDIT_LOCKOUT_ENABLED", False, "rail_django.E030", _A, "refuse logins that the lockout rules below lock out; needs `rail_django.security.backends.LockoutBackend` first in `AUTHENTICATION_BACKENDS` and `rail_django.alerts.lockout.LockoutMiddleware` in `MIDDLEWARE` (HTTP 429; W060 without it)", _lockout, attribute="lockout_enabled", other_ids=("rail_django.E031",)),
    _setting("AUDIT_ATTEMPTED_USERNAME", "known", "rail_django.E032", _A, 'what a failed login stores as `username_attempted`: `"always"` the text as typed; `"known"` the text only when such a user exists, else a keyed hash (a password typed into the username field is not kept in clear); `"hash"` always the keyed hash (see [alerts](alerts.md#what-a-failed-login-stores))', v.choice(ATTEMPTED_USERNAME_MODES), attribute="attempted_username"),
    # -- GraphQL (docs/graphql.md) --
    _setting("RAIL_DJANGO_GRAPHQL", default_graphql_settings, "rail_django.E020", "graphql", "GraphQL capture and the frontend mutation (see [GraphQL](graphql.md))", validate_graphql, other_ids=("rail_django.E021", "rail_django.E022", "rail_django.E023", "rail_django.E024", "rail_django.E025", "rail_django.W020")),
    _setting("AUDIT_TRACKED_MODELS", lambda: {}, "rail_django.E070", _R, "the models whose changes are recorded, `{\"app_label.Model\": {\"fields\": [...], \"exclude\": [...], \"mask\": [...], \"m2m\": [...]}}` (see [tracking](tracking.md)); models and fields are checked by E070-E074", v.rule(lambda x: isinstance(x, dict), 'it must be a dict of "app_label.Model" -> options'), default_doc="`{}`"),
    # -- Security events with no code, and lockout (the rules are parsed by rail_django.alerts.lockout_rules) --
    _setting("AUDIT_ACCOUNT_EVENTS", True, "rail_django.E080", _L, "account lifecycle, password and privilege changes from model signals (see [events](events.md#security-events-recorded-with-no-code)); `False` for a project that records them with another tool", v.boolean()),
    _setting("AUDIT_CLIENT_EVENT_LIMIT", lambda: {"events": 20, "window": 60}, "rail_django.E081", _L, "per client (user, else IP) and kind, at most `events` suspicious requests, permission denials and DRF failures are recorded per `window` seconds; the first past it is one `rate.limit.exceeded`", v.rule(lambda x: isinstance(x, dict) and set(x) <= {"events", "window"} and all(v.is_int(x.get(k)) and x[k] >= 1 for k in ("events", "window")), 'it must be {"events": N, "window": SECONDS} with whole numbers >= 1'), default_doc='`{"events": 20, "window": 60}`'),
    _setting("AUDIT_LOCKOUT_PARAMETERS", lambda: [["username", "ip_address"]], "rail_django.E062", _L, "what a failure counts against: each entry a parameter (`\"username\"`, `\"ip_address\"`, `\"user_agent\"`) or a list of them (a combination), as django-axes' `AXES_LOCKOUT_PARAMETERS`", _lockout_rule("AUDIT_LOCKOUT_PARAMETERS"), default_doc='`[["username", "ip_address"]]`'),
    _setting("AUDIT_LOCKOUT_FAILURE_LIMIT", 5, "rail_django.E063", _L, "failures of one key that lock it", _lockout_rule("AUDIT_LOCKOUT_FAILURE_LIMIT")),
    _setting("AUDIT_LOCKOUT_FAILURE_WINDOW", 900, "rail_django.E063", _L, "seconds, from a key's first failure, within which its failures are counted", _lockout_rule("AUDIT_LOCKOUT_FAILURE_WINDOW")),
    _setting("AUDIT_LOCKOUT_COOLOFF", lambda: [300, 1800, 7200, 86400], "rail_django.E064", _L, "seconds of the 1st, 2nd, 3rd... lockout of one key (the last repeats): progressive cool-off", _lockout_rule("AUDIT_LOCKOUT_COOLOFF"), default_doc="`[300, 1800, 7200, 86400]`"),
    _setting("AUDIT_LOCKOUT_TIER_MEMORY", 86400, "rail_django.E063", _L, "seconds a lockout counts towards the next, longer tier", _lockout_rule("AUDIT_LOCKOUT_TIER_MEMORY")),
    _setting("AUDIT_LOCKOUT_ALLOW_IPS", lambda: [], "rail_django.E065", _L, "IPs / CIDR networks never locked out", _lockout_rule("AUDIT_LOCKOUT_ALLOW_IPS"), default_doc="`[]`"),
    _setting("AUDIT_LOCKOUT_DENY_IPS", lambda: [], "rail_django.E065", _L, "IPs / CIDR networks always refused (HTTP 403)", _lockout_rule("AUDIT_LOCKOUT_DENY_IPS"), default_doc="`[]`"),
    _setting("AUDIT_LOCKOUT_ALLOW_USERNAMES", lambda: [], "rail_django.E066", _L, "usernames never locked out (compared normalised)", _lockout_rule("AUDIT_LOCKOUT_ALLOW_USERNAMES"), default_doc="`[]`"),
    _setting("AUDIT_LOCKOUT_DENY_USERNAMES", lambda: [], "rail_django.E066", _L, "usernames always refused", _lockout_rule("AUDIT_LOCKOUT_DENY_USERNAMES"), default_doc="`[]`"),
    _setting("AUDIT_LOCKOUT_RESET_ON_SUCCESS", False, "rail_django.E067", _L, "a successful login forgets its keys' failures (not their locks)", _lockout_rule("AUDIT_LOCKOUT_RESET_ON_SUCCESS")),
    _setting("AUDIT_LOCKOUT_TEMPLATE", None, "rail_django.E068", _L, "template rendered for the 429 (context `retry_after`, `lockout_rule`); otherwise plain text, or JSON for API clients", _lockout_rule("AUDIT_LOCKOUT_TEMPLATE")),
)

#: The settings by name.
REGISTRY: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}
