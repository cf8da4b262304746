"""``AUDIT_STREAM``: the streaming tier's settings (NATS JetStream), validated and typed.

    AUDIT_STREAM = {"backend": "nats", "servers": ["nats://nats-1:4222", ...], "stream": "AUDIT",
                    "subject": "audit.events", "replicas": 3}

The contract's four keys plus optional ones with defaults (:data:`STREAM_DEFAULTS`); each kind of problem
has its own check id (E100-E106). ``None`` (the default) turns the streaming tier off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from rail_django.conf.validators import Problem, is_int

#: The backends ``AUDIT_STREAM["backend"]`` accepts.
STREAM_BACKENDS = ("nats",)
#: Optional keys and their defaults.
STREAM_DEFAULTS: dict[str, Any] = {
    "stream": "AUDIT",
    "subject": "audit.events",
    "replicas": 1,
    "duplicate_window": 120.0,
    "durable": "rail-django-ingest",
    "batch": 1000,
    "connect_timeout": 2.0,
    "publish_timeout": 5.0,
}
REQUIRED_KEYS = ("backend", "servers")
#: Stream and consumer names: JetStream refuses whitespace, ``.``, ``*``, ``>``, path separators.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: A subject without wildcards: dot-separated tokens.
_SUBJECT = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_SETTING = "AUDIT_STREAM"


@dataclass(frozen=True)
class StreamConfig:
    """A valid ``AUDIT_STREAM``."""

    backend: str
    servers: tuple[str, ...]
    stream: str
    subject: str
    #: JetStream replicas of the stream (``num_replicas``) when the sink or ``ingest`` creates it.
    replicas: int
    #: Seconds during which JetStream drops a message whose ``Nats-Msg-Id`` (the ``event_id``) it has seen.
    duplicate_window: float
    #: The durable pull consumer every ``ingest`` process shares.
    durable: str
    #: Messages ``ingest`` fetches and stores per transaction.
    batch: int
    connect_timeout: float
    #: Seconds the sink waits for JetStream's acks of a batch before the batch counts as failed.
    publish_timeout: float

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> StreamConfig:
        """A validated ``AUDIT_STREAM`` dict -> the config."""
        merged = {**STREAM_DEFAULTS, **value}
        return cls(
            backend=merged["backend"], servers=tuple(merged["servers"]), stream=merged["stream"],
            subject=merged["subject"], replicas=merged["replicas"], duplicate_window=float(merged["duplicate_window"]),
            durable=merged["durable"], batch=merged["batch"], connect_timeout=float(merged["connect_timeout"]),
            publish_timeout=float(merged["publish_timeout"]),
        )


def _seconds(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")


def _problem(key: str, check_id: str, allowed: str, value: Any) -> Problem:
    return Problem(allowed, subject=f"{_SETTING}[{key!r}]", shown=value, check_id=check_id)


def validate_stream(value: Any) -> list[Problem]:
    """The problems of an ``AUDIT_STREAM`` value (``[]`` when fine)."""
    if value is None:
        return []
    if not isinstance(value, dict):
        return [Problem('it must be None or a dict such as {"backend": "nats", "servers": ["nats://host:4222"]}')]
    problems: list[Problem] = []
    unknown = sorted(str(k) for k in value if k not in STREAM_DEFAULTS and k not in REQUIRED_KEYS)
    if unknown:
        known = ", ".join(sorted([*REQUIRED_KEYS, *STREAM_DEFAULTS]))
        problems.append(Problem(f"unknown key(s) {', '.join(unknown)}; the keys are {known}",
                                check_id="rail_django.E106"))
    backend = value.get("backend")
    if backend not in STREAM_BACKENDS:
        problems.append(_problem("backend", "rail_django.E100", f"it must be one of {', '.join(STREAM_BACKENDS)}", backend))
    servers = value.get("servers")
    if not (isinstance(servers, (list, tuple)) and servers and all(_server(s) for s in servers)):
        problems.append(_problem("servers", "rail_django.E101",
                                 'it must be a non-empty list of server URLs such as "nats://127.0.0.1:4222"', servers))
    merged = {**STREAM_DEFAULTS, **value}
    for key in ("stream", "durable"):
        if not (isinstance(merged[key], str) and _NAME.match(merged[key])):
            problems.append(_problem(key, "rail_django.E102", "it must be a name of letters, digits, - and _ (at most 64)", merged[key]))
    if not (isinstance(merged["subject"], str) and _SUBJECT.match(merged["subject"])):
        problems.append(_problem("subject", "rail_django.E102", "it must be a subject without wildcards, e.g. audit.events", merged["subject"]))
    if not (is_int(merged["replicas"]) and 1 <= merged["replicas"] <= 5):
        problems.append(_problem("replicas", "rail_django.E103", "it must be a whole number from 1 to 5", merged["replicas"]))
    for key in ("duplicate_window", "connect_timeout", "publish_timeout"):
        if not _seconds(merged[key]):
            problems.append(_problem(key, "rail_django.E104", "it must be a number of seconds > 0", merged[key]))
    if not (is_int(merged["batch"]) and 1 <= merged["batch"] <= 10_000):
        problems.append(_problem("batch", "rail_django.E105", "it must be a whole number from 1 to 10000", merged["batch"]))
    return problems


def _server(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    try:
        parsed = urlparse(url)
        parsed.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        return False
    return parsed.scheme in ("nats", "tls", "ws", "wss") and bool(parsed.hostname)


def stream_config(value: dict[str, Any] | None) -> StreamConfig | None:
    """The registry's conversion: a valid value -> :class:`StreamConfig` or None."""
    return None if value is None else StreamConfig.from_value(value)
