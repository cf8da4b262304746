"""System checks for model change tracking (registered from ``ready()``).

- ``rail_django.E070``: ``AUDIT_TRACKED_MODELS`` is not a dict of dicts, or an entry has an unknown option.
- ``rail_django.E071``: a tracked model does not exist.
- ``rail_django.E072``: ``fields`` / ``exclude`` / ``mask`` names a field the model does not have.
- ``rail_django.E073``: ``m2m`` names no many-to-many field or reverse accessor of the model.
- ``rail_django.E074``: the audit event model itself is tracked.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import Error

from rail_django.conf import read_setting
from rail_django.tracking.options import OPTION_NAMES
from rail_django.tracking.registry import field_lookup, is_audit_model, m2m_lookup, requested_models

SETTING = "AUDIT_TRACKED_MODELS"


def _where(ref: Any) -> str:
    if isinstance(ref, type):
        return f"track({ref._meta.label})"
    return f"{SETTING}[{ref!r}]" if isinstance(ref, str) else f"track({ref!r})"


def _check_shape() -> list[Error]:
    value = read_setting(SETTING)
    if not isinstance(value, dict):
        return [Error(f"{SETTING} is {value!r}; it must be a dict of 'app_label.ModelName': {{options}}.",
                      hint=f"Fix {SETTING} in your settings.", id="rail_django.E070")]
    errors = []
    for label, options in value.items():
        if not isinstance(options, dict):
            errors.append(Error(f"{SETTING}[{label!r}] is {options!r}; it must be a dict of options ({{}} for none).",
                                hint=f"Fix {SETTING} in your settings.", id="rail_django.E070"))
            continue
        for key, names in options.items():
            if key not in OPTION_NAMES:
                errors.append(Error(
                    f"{SETTING}[{label!r}] has the unknown option {key!r}; allowed: {', '.join(OPTION_NAMES)}.",
                    hint=f"Fix {SETTING} in your settings.", id="rail_django.E070"))
            elif names is not None and (isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple, set))):
                errors.append(Error(
                    f"{SETTING}[{label!r}][{key!r}] is {names!r}; it must be a list of names.",
                    hint=f"Fix {SETTING} in your settings.", id="rail_django.E070"))
    return errors


def _check_names(ref: Any, model: Any, options: Any) -> list[Error]:
    errors = []
    fields = field_lookup(model)
    for option in ("fields", "exclude", "mask"):
        for name in getattr(options, option) or ():
            if name not in fields:
                known = ", ".join(sorted({f.name for f in model._meta.concrete_fields}))
                errors.append(Error(
                    f"{_where(ref)}: {option} names {name!r}, which is not a field of {model._meta.label}; "
                    f"its fields are: {known}.", hint="Fix the field name.", id="rail_django.E072"))
    available = m2m_lookup(model)
    for name in options.m2m or ():
        if name not in available:
            known = ", ".join(sorted(available)) or "none"
            errors.append(Error(
                f"{_where(ref)}: m2m names {name!r}, which is not a many-to-many field or reverse accessor of "
                f"{model._meta.label}; those are: {known}.", hint="Fix the name.", id="rail_django.E073"))
    return errors


def check_tracked_models(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Every tracked model and every field name in its options must exist."""
    errors = _check_shape()
    for ref, model, options in requested_models():
        if model is None:
            errors.append(Error(f"{_where(ref)}: no installed model is called {ref!r}; use 'app_label.ModelName'.",
                                hint="Fix the model label, or add its app to INSTALLED_APPS.", id="rail_django.E071"))
            continue
        if is_audit_model(model):
            errors.append(Error(f"{_where(ref)}: the audit event model itself cannot be tracked (each stored event "
                                "would record another).", hint="Remove it.", id="rail_django.E074"))
            continue
        errors.extend(_check_names(ref, model, options))
    return errors
