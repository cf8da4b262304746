"""System checks for rail-django settings (``rail_django.E0NN`` / ``W0NN``).

Each check comes from the declaration of its setting in
:mod:`rail_django.conf.registry` and names the setting and what is allowed,
so ``manage.py check`` (run by ``runserver``, ``migrate`` and the test
runner) stops a bad configuration before the first request.

One error cannot be a check: ``SecurityContextMiddleware`` in ``MIDDLEWARE``
without ``"rail_django"`` in ``INSTALLED_APPS`` (these checks are registered
by that app). The middleware raises ``ImproperlyConfigured`` with
``rail_django.E061`` when it is built instead.
"""

from __future__ import annotations

import difflib
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.core.checks import Warning as CheckWarning

from rail_django.conf import REGISTRY, problems_of, read_setting
from rail_django.conf.registry import Setting
from rail_django.conf.validators import SAME, Problem

#: Prefixes of the names checked for typos.
PREFIXES = ("AUDIT_", "SECURITY_", "RAIL_DJANGO_")
#: How close (difflib ratio) an unknown name must be to a known one to be called a typo.
#: High enough that a project's own ``AUDIT_PROXY_PORT`` or ``AUDIT_LOG_LEVEL`` is left alone.
TYPO_CUTOFF = 0.85
UNKNOWN_SETTING_ID = "rail_django.W001"


def _message(setting: Setting, problem: Problem, value: Any) -> CheckMessage:
    subject = problem.subject or setting.name
    if problem.message is not None:
        text = problem.message
    else:
        shown = value if problem.shown is SAME else problem.shown
        text = f"{subject} is {shown!r}; {problem.allowed}."
    level = CheckWarning if problem.warning else Error
    return level(text, hint=problem.hint or f"Fix {subject} in your settings.", id=problem.check_id or setting.check_id)


def setting_messages(setting: Setting) -> list[CheckMessage]:
    """The check messages for one registered setting's current value."""
    value = read_setting(setting.name)
    return [_message(setting, problem, value) for problem in problems_of(setting, value)]


@register("rail_django")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Validate every registered setting (``RAIL_DJANGO_GRAPHQL`` has :func:`check_graphql`)."""
    messages: list[CheckMessage] = []
    for setting in REGISTRY.values():
        if setting.name != "RAIL_DJANGO_GRAPHQL":
            messages += setting_messages(setting)
    return messages


@register("rail_django")
def check_graphql(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``RAIL_DJANGO_GRAPHQL``: its shape (E020), names (E021, E022), switches (E023), limits (E024, E025)."""
    return setting_messages(REGISTRY["RAIL_DJANGO_GRAPHQL"])


@register("rail_django")
def check_unknown_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``AUDIT_*``, ``SECURITY_*`` and ``RAIL_DJANGO_*`` names that look like a misspelt setting (W001)."""
    known = list(REGISTRY)
    messages: list[CheckMessage] = []
    for name in sorted(dir(settings)):
        if not name.isupper() or not name.startswith(PREFIXES) or name in REGISTRY:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=TYPO_CUTOFF)
        if close:
            messages.append(CheckWarning(
                f"{name} is not a rail-django setting; did you mean {close[0]}?",
                hint=f"rail-django ignores {name}: rename it to {close[0]}, or give your own setting a name "
                "less like one of rail-django's.",
                id=UNKNOWN_SETTING_ID,
            ))
    return messages
