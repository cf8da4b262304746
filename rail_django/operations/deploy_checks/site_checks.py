"""Project-wide findings: ``check --deploy``, ``DEBUG``, ``SECRET_KEY``, GraphiQL and introspection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)

from rail_django.operations.deploy_checks.findings import Finding

#: Django deployment checks this command reports under its own, stricter ids.
SUPERSEDED = {"security.W018": "django.debug", "security.W009": "django.secret_key"}

#: Keys published in this repository (the sample project, the benchmarks): anyone can sign with them.
KNOWN_PUBLIC_KEYS = frozenset({
    "sample-project-demo-key-not-secret-" + "0" * 20,
    "benchmark-only-not-secret-" + "x" * 40,
})
#: Words that mark a placeholder, compared without case and separators ("Change_Me" is "changeme").
PLACEHOLDER_WORDS = ("demo", "insecure", "changeme")


def _severity(level: int) -> str:
    if level >= checks.ERROR:
        return "critical"
    if level >= checks.WARNING:
        return "warning"
    return "info"


def check_django_deploy() -> list[Finding]:
    """Everything ``manage.py check --deploy`` reports (including rail-django's ``E0NN`` checks)."""
    messages = checks.run_checks(include_deployment_checks=True)
    findings = [
        Finding(m.id or "django.check", _severity(m.level), str(m.msg).replace("\n", " "), m.hint or "")
        for m in messages
        if m.id not in SUPERSEDED and not m.is_silenced()
    ]
    if not any(f.severity != "info" for f in findings):
        findings.append(Finding("django.check_deploy", "ok", "manage.py check --deploy reports no problems.", ""))
    return findings


def check_debug() -> list[Finding]:
    if settings.DEBUG:
        return [
            Finding(
                "django.debug", "critical",
                "DEBUG is True: error pages show settings, SQL and stack traces to anyone.",
                "Set DEBUG = False in production settings.",
            )
        ]
    return [Finding("django.debug", "ok", "DEBUG is False.", "")]


def _weak(key: Any) -> bool:
    text = str(key or "")
    return (
        len(text) < SECRET_KEY_MIN_LENGTH
        or len(set(text)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
        or text.startswith(SECRET_KEY_INSECURE_PREFIX)
    )


def is_public_key(key: Any) -> bool:
    """A key copied from published code or a placeholder (``demo``, ``insecure``, ``change-me``)."""
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key or "")
    flat = "".join(ch for ch in text.casefold() if ch.isalnum())
    return text in KNOWN_PUBLIC_KEYS or any(word in flat for word in PLACEHOLDER_WORDS)


def check_secret_key() -> list[Finding]:
    hint = "Generate one with django.core.management.utils.get_random_secret_key() and keep it out of source control."
    findings = []
    key = getattr(settings, "SECRET_KEY", "")
    if is_public_key(key):
        findings.append(
            Finding(
                "django.secret_key", "critical",
                "SECRET_KEY is a published sample or placeholder value (it matches a key shipped with rail-django's "
                "sample code or contains 'demo', 'insecure' or 'change-me'): sessions and signed values can be forged.",
                hint,
            )
        )
    elif _weak(key):
        findings.append(
            Finding(
                "django.secret_key", "critical",
                f"SECRET_KEY is weak (shorter than {SECRET_KEY_MIN_LENGTH} characters, fewer than "
                f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS} distinct ones, or prefixed '{SECRET_KEY_INSECURE_PREFIX}'): "
                "sessions and signed values can be forged.",
                hint,
            )
        )
    else:
        findings.append(Finding("django.secret_key", "ok", "SECRET_KEY is long, varied and not a known sample value.", ""))
    if any(_weak(key) or is_public_key(key) for key in getattr(settings, "SECRET_KEY_FALLBACKS", [])):
        findings.append(
            Finding("django.secret_key_fallbacks", "warning", "A SECRET_KEY_FALLBACKS entry is weak or published.", hint)
        )
    return findings


def graphql_endpoints() -> Iterator[tuple[str, type, dict[str, Any]]]:
    """``(route, view class, init kwargs)`` of every graphene-django ``GraphQLView`` in the URLconf."""
    try:
        from graphene_django.views import GraphQLView
    except ImportError:
        return
    from django.urls import URLPattern, URLResolver, get_resolver

    def walk(patterns: list, prefix: str) -> Iterator[tuple[str, type, dict[str, Any]]]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                view_class = getattr(pattern.callback, "view_class", None)
                if isinstance(view_class, type) and issubclass(view_class, GraphQLView):
                    yield prefix + str(pattern.pattern), view_class, dict(getattr(pattern.callback, "view_initkwargs", {}))

    yield from walk(get_resolver().url_patterns, "/")


def _blocks_introspection(rules: Any) -> bool:
    from graphql.validation import NoSchemaIntrospectionCustomRule

    try:
        from graphene.validation import DisableIntrospection
    except ImportError:  # older graphene
        DisableIntrospection = NoSchemaIntrospectionCustomRule  # noqa: N806
    return any(
        isinstance(rule, type) and issubclass(rule, (NoSchemaIntrospectionCustomRule, DisableIntrospection))
        for rule in (rules or ())
    )


def check_graphql() -> list[Finding]:
    endpoints = list(graphql_endpoints())
    if not endpoints:
        return [Finding("graphql.endpoints", "ok", "No graphene-django GraphQLView is routed.", "")]
    findings = []
    for route, view_class, initkwargs in endpoints:
        if initkwargs.get("graphiql", view_class.graphiql):
            findings.append(
                Finding(
                    "graphql.graphiql", "warning",
                    f"GraphiQL is served at {route}: anyone can browse and try the API in a browser.",
                    "Pass graphiql=settings.DEBUG (or False) to GraphQLView.as_view() in production.",
                )
            )
        if not _blocks_introspection(initkwargs.get("validation_rules") or view_class.validation_rules):
            findings.append(
                Finding(
                    "graphql.introspection", "warning",
                    f"Introspection is allowed at {route}: the whole schema can be downloaded.",
                    "Pass validation_rules=[graphene.validation.DisableIntrospection] to GraphQLView.as_view().",
                )
            )
    if not findings:
        findings.append(Finding("graphql.endpoints", "ok", f"GraphiQL and introspection are off at {len(endpoints)} endpoint(s).", ""))
    return findings


CHECKS = [check_django_deploy, check_debug, check_secret_key, check_graphql]
