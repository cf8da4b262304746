"""``RAIL_DJANGO_GRAPHQL``: its defaults, its validation (E020-E025, W020) and :class:`GraphQLConfig`.

The setting is a dict of sections; each section a project gives is merged
over :data:`DEFAULT_GRAPHQL_SETTINGS`. Keys rail-django does not know are kept
(the setting may hold other libraries' keys); a key close to one of ours is
reported as a probable typo.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from rail_django.conf.validators import Problem, is_int

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

_BOOLEANS = (
    ("schema_settings", "enable_extension_mutations"),
    ("security_settings", "record_validation_failures"),
    ("security_settings", "frontend_audit_allow_anonymous"),
)
_EVENT_TYPE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")


def default_graphql_settings() -> dict[str, dict[str, Any]]:
    """A fresh copy of :data:`DEFAULT_GRAPHQL_SETTINGS`."""
    return {section: dict(values) for section, values in DEFAULT_GRAPHQL_SETTINGS.items()}


def normalize_graphql_name(name: Any) -> str:
    """``"createOrder"``, ``"create_order"`` and ``"CreateOrder"`` all become ``"createorder"``."""
    return str(name).replace("_", "").lower()


def merge_graphql_settings(configured: Any) -> dict[str, dict[str, Any]]:
    """``configured`` merged section by section over the defaults (what is not a dict is skipped)."""
    merged = default_graphql_settings()
    if isinstance(configured, dict):
        for section, values in configured.items():
            if isinstance(values, dict):
                merged.setdefault(section, {}).update(values)
    return merged


def _name(section: str, key: str) -> str:
    return f'RAIL_DJANGO_GRAPHQL["{section}"]["{key}"]'


def _problem(check_id: str, section: str, key: str, value: Any, allowed: str) -> Problem:
    return Problem(allowed, subject=_name(section, key), shown=value, check_id=check_id)


def _shape(configured: dict[str, Any]) -> list[Problem]:
    problems = []
    for section in DEFAULT_GRAPHQL_SETTINGS:
        value = configured.get(section, {})
        if not isinstance(value, dict):
            problems.append(Problem("it must be a dict", subject=f'RAIL_DJANGO_GRAPHQL["{section}"]', shown=value))
            continue
        known = list(DEFAULT_GRAPHQL_SETTINGS[section])
        for key in value:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.8)
            if key not in known and close:
                problems.append(Problem(
                    "a known key", check_id="rail_django.W020", warning=True, hint="Unknown keys are ignored.",
                    message=f"{_name(section, key)} is not a rail-django setting; did you mean {close[0]!r}?",
                ))
    return problems


def _names(values: dict[str, Any]) -> list[Problem]:
    problems = []
    fields = values.get("audited_query_fields", ())
    if not isinstance(fields, (list, tuple)) or not all(isinstance(f, str) and f.strip() for f in fields):
        problems.append(_problem("rail_django.E021", "security_settings", "audited_query_fields", fields,
                                 "it must be a list of root field or operation names"))
    mapping = values.get("mutation_event_types", {})
    if not isinstance(mapping, dict):
        return [*problems, _problem("rail_django.E022", "security_settings", "mutation_event_types", mapping,
                                    "it must be a dict of mutation field name -> event type")]
    for name, event_type in mapping.items():
        if not isinstance(name, str) or not name.strip():
            problems.append(_problem("rail_django.E022", "security_settings", "mutation_event_types", name,
                                     "each key must be a mutation field name"))
        elif not isinstance(event_type, str) or len(event_type) > 64 or not _EVENT_TYPE.match(event_type):
            problems.append(Problem(
                "it must be an event type such as 'data.delete' (lower case, dotted, at most 64 characters)",
                subject=f"{_name('security_settings', 'mutation_event_types')}[{name!r}]", shown=event_type,
                check_id="rail_django.E022",
            ))
    return problems


def _numbers(values: dict[str, Any]) -> list[Problem]:
    problems = []
    limit = values.get("frontend_audit_rate_limit")
    if limit is not None and (not is_int(limit) or limit < 1):
        problems.append(_problem("rail_django.E024", "security_settings", "frontend_audit_rate_limit", limit,
                                 "it must be None (no limit) or a whole number of events >= 1"))
    window = values.get("frontend_audit_rate_window")
    if not is_int(window) or window < 1:
        problems.append(_problem("rail_django.E024", "security_settings", "frontend_audit_rate_window", window,
                                 "it must be a whole number of seconds >= 1"))
    size = values.get("frontend_audit_max_metadata_bytes")
    if not is_int(size) or not 2 <= size <= 1_048_576:
        problems.append(_problem("rail_django.E025", "security_settings", "frontend_audit_max_metadata_bytes", size,
                                 "it must be a whole number of bytes from 2 to 1048576"))
    return problems


def validate_graphql(configured: Any) -> list[Problem]:
    """Its shape (E020), names (E021, E022), switches (E023), limits (E024, E025) and typos (W020)."""
    if not isinstance(configured, dict):
        return [Problem("it must be a dict of sections")]
    problems = _shape(configured)
    if any(not p.warning for p in problems):
        return problems
    merged = merge_graphql_settings(configured)
    for section, key in _BOOLEANS:
        if not isinstance(merged[section].get(key), bool):
            problems.append(_problem("rail_django.E023", section, key, merged[section].get(key), "it must be True or False"))
    return problems + _names(merged["security_settings"]) + _numbers(merged["security_settings"])


@dataclass(frozen=True)
class GraphQLConfig:
    """The resolved ``RAIL_DJANGO_GRAPHQL`` values the GraphQL layer reads on its hot path.

    Each key is checked on its own: a bad one falls back to its default and
    the others are still used (``manage.py check`` reports the bad one).
    """

    extension_mutations: bool
    audited_queries: frozenset[str]
    mutation_event_types: dict[str, str]
    record_validation_failures: bool
    frontend_allow_anonymous: bool
    frontend_rate_limit: int | None
    frontend_rate_window: int
    frontend_max_metadata_bytes: int

    @classmethod
    def from_value(cls, configured: Any) -> GraphQLConfig:
        """Build the configuration from the value of ``RAIL_DJANGO_GRAPHQL``."""
        merged = merge_graphql_settings(configured)
        schema, security = merged["schema_settings"], merged["security_settings"]
        defaults = DEFAULT_GRAPHQL_SETTINGS["security_settings"]

        def number(key: str, minimum: int) -> int:
            value = security.get(key)
            return value if is_int(value) and value >= minimum else defaults[key]

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
