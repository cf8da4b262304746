"""Keep the values of secret variables out of error text.

Redaction masks a variable named like a secret (``$password``, ``$apiToken``)
in the event's ``variables``, but graphql-core, Django and resolvers quote
values in their error messages (``Variable '$password' got invalid value
'hunter2'``, ``Field 'id' expected a number but got 'sk_live_...'``). Every
value that redaction masks is therefore also replaced, in each error text that
is stored, by the mask, in the forms those messages quote it in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from graphql.pyutils import inspect

from rail_django.events.redaction import current_redactor, redact

#: Secrets shorter than this are replaced only where they stand alone (not inside a longer word or number).
SHORT_SECRET = 4
_MAX_SECRETS = 200


def _leaves(value: Any, out: list[str]) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, Mapping):
        for item in value.values():
            _leaves(item, out)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _leaves(item, out)
    elif isinstance(value, (str, int, float)):
        out.append(value if isinstance(value, str) else str(value))
    else:
        out.append(str(value))


def _masked(original: Any, cleaned: Any, mask: str, out: list[str]) -> None:
    """Walk ``original`` beside its redacted form; collect the values found where the mask was put."""
    if isinstance(cleaned, str) and cleaned == mask and not (isinstance(original, str) and original == mask):
        _leaves(original, out)
    elif isinstance(original, Mapping) and isinstance(cleaned, Mapping):
        for (_, item), cleaned_item in zip(original.items(), cleaned.values(), strict=False):
            _masked(item, cleaned_item, mask, out)
    elif isinstance(original, (list, tuple)) and isinstance(cleaned, list):
        for item, cleaned_item in zip(original, cleaned, strict=False):
            _masked(item, cleaned_item, mask, out)


def secret_values(*variable_sets: Any) -> list[str]:
    """The values redaction masks in these variable dicts (the raw and the coerced ones), as text."""
    mask = current_redactor().mask
    found: list[str] = []
    for variables in variable_sets:
        if isinstance(variables, Mapping) and variables:
            _masked(variables, redact(dict(variables)), mask, found)
    unique = sorted({value for value in found if value and value != mask}, key=len, reverse=True)
    return unique[:_MAX_SECRETS]


def _forms(secret: str) -> set[str]:
    """How messages may quote ``secret`` (inside its quotes): raw, as Python's ``repr``, JSON, graphql-core's ``inspect``.

    ``inspect`` cuts a long value in the middle (``'abc...xyz'``): that cut form is one of them.
    """
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], inspect(secret)[1:-1]}
    return {form for form in forms if form}


def secret_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern matching every quoted form of every secret (longest first), or ``None`` when there are none."""
    long_forms: set[str] = set()
    short_forms: set[str] = set()
    for secret in secrets:
        for form in _forms(secret):
            (short_forms if len(form) < SHORT_SECRET else long_forms).add(form)
    parts = [re.escape(form) for form in sorted(long_forms, key=len, reverse=True)]
    parts += [rf"(?<![0-9A-Za-z]){re.escape(form)}(?![0-9A-Za-z])" for form in sorted(short_forms, key=len, reverse=True)]
    return re.compile("|".join(parts)) if parts else None


def scrub_secrets(messages: list[str], secrets: list[str]) -> list[str]:
    """``messages`` with every quoted form of each secret replaced by the redaction mask."""
    pattern = secret_pattern(secrets) if messages else None
    if pattern is None:
        return messages
    mask = current_redactor().mask
    return [pattern.sub(mask, message) for message in messages]
