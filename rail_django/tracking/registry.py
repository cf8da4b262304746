"""Which models are tracked, and which of their fields: ``AUDIT_TRACKED_MODELS`` and ``track()`` resolved.

Resolution needs the app registry, so it happens in ``ready()`` and again
whenever a rail-django setting changes or ``track()`` is called afterwards.
Names that do not resolve are left out here and reported by
``manage.py check`` (:mod:`rail_django.tracking.checks`), so a typo never
breaks a request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import models

from rail_django.conf import DEFAULT_REDACTION_FIELDS, read_setting
from rail_django.events.redaction import get_redactor
from rail_django.tracking.options import TrackOptions, code_registrations

logger = logging.getLogger("rail_django.audit")

#: How a field's value is snapshotted and written into an event.
PLAIN, JSON, FILE, BINARY = "plain", "json", "file", "binary"


def _kind(f: models.Field) -> str:
    if isinstance(f, models.JSONField):
        return JSON
    if isinstance(f, models.FileField):
        return FILE
    if isinstance(f, models.BinaryField):
        return BINARY
    return PLAIN


@dataclass(frozen=True)
class TrackedField:
    """One recorded field: the key in ``changes`` is ``name``, the value read from ``attname``."""

    name: str
    attname: str
    column: str
    field: models.Field
    kind: str
    masked: bool
    auto_now: bool


@dataclass(frozen=True)
class M2MSide:
    """One tracked end of a many-to-many relation.

    ``forward``: the end that declares the field (``name`` is the field's
    name) or the reverse end (``name`` is its accessor, e.g. ``"invoices"``).
    ``source_attname`` / ``target_attname`` are the ``through`` model's
    columns pointing at the declaring model and at the related model.
    """

    spec: TrackedModel
    name: str
    forward: bool
    through: type[models.Model]
    source_attname: str
    target_attname: str

    def own_attname(self) -> str:
        """The ``through`` column holding ids of this end's objects."""
        return self.source_attname if self.forward else self.target_attname

    def other_attname(self) -> str:
        return self.target_attname if self.forward else self.source_attname


@dataclass(eq=False)
class TrackedModel:
    """A tracked model with its resolved fields."""

    model: type[models.Model]
    options: TrackOptions
    fields: tuple[TrackedField, ...]
    tables: tuple[str, ...]
    by_attname: dict[str, TrackedField] = field(default_factory=dict)
    by_column: dict[str, TrackedField] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_attname = {f.attname: f for f in self.fields}
        self.by_column = {f.column: f for f in self.fields}
        meta = self.model._meta
        # A proxy writes its concrete model's rows: events and history use the concrete model's names.
        self.label = meta.concrete_model._meta.label_lower
        self.model_label = meta.concrete_model._meta.label
        self.pk = meta.pk
        self.table = meta.db_table
        self.attnames = tuple(f.attname for f in self.fields)
        self.copies = tuple((f.attname, f.kind) for f in self.fields)
        key = self.pk.target_field if self.pk.is_relation else self.pk  # a multi-table child's parent link
        self.integer_pk = isinstance(key, models.IntegerField)

    def pk_text(self, value: Any) -> str:
        """A primary key as the events write it: ``str(pk)`` of the Python value (a UUID with dashes,
        whatever the database sent)."""
        if self.integer_pk and type(value) is int:
            return str(value)
        return str(self.pk.to_python(value))


@dataclass
class Tracking:
    """Everything the capture layer looks up on its hot path, keyed for O(1) access."""

    specs: dict[type[models.Model], TrackedModel] = field(default_factory=dict)
    by_table: dict[str, TrackedModel] = field(default_factory=dict)
    m2m_sides: dict[type[models.Model], list[M2MSide]] = field(default_factory=dict)
    #: Explicit ``through`` models whose rows, written directly, are many-to-many changes.
    through_sides: dict[type[models.Model], list[M2MSide]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.specs)


def _model(ref: Any) -> type[models.Model] | None:
    if isinstance(ref, type) and issubclass(ref, models.Model):
        return ref
    try:
        return apps.get_model(str(ref))
    except (LookupError, ValueError):
        return None


def requested_models() -> Iterator[tuple[Any, type[models.Model] | None, TrackOptions]]:
    """``(reference, model or None, options)`` for every registration; the setting wins over ``track()``."""
    entries: dict[Any, tuple[Any, TrackOptions]] = {}
    for ref, options in code_registrations().items():
        model = _model(ref)
        entries[model if model is not None else ref] = (ref, options)
    configured = read_setting("AUDIT_TRACKED_MODELS")
    if isinstance(configured, dict):
        for ref, values in configured.items():
            model = _model(ref)
            options = TrackOptions.from_mapping(values if isinstance(values, dict) else {})
            entries[model if model is not None else ref] = (ref, options)
    for key, (ref, options) in entries.items():
        yield ref, key if isinstance(key, type) else None, options


def field_lookup(model: type[models.Model]) -> dict[str, models.Field]:
    """Concrete fields by name and by attname (``"customer"`` and ``"customer_id"``)."""
    lookup: dict[str, models.Field] = {}
    for f in model._meta.concrete_fields:
        lookup[f.name] = f
        lookup[f.attname] = f
    return lookup


def m2m_lookup(model: type[models.Model]) -> dict[str, tuple[models.ManyToManyField, bool]]:
    """Many-to-many names -> (field, forward): the model's own fields and its reverse accessors."""
    names: dict[str, tuple[models.ManyToManyField, bool]] = {f.name: (f, True) for f in model._meta.many_to_many}
    for rel in model._meta.related_objects:
        if rel.many_to_many:
            names.setdefault(rel.get_accessor_name(), (rel.field, False))
    return names


def _always_masked(model: type[models.Model]) -> set[str]:
    try:
        user_model = get_user_model()
    except Exception:  # a broken AUTH_USER_MODEL is Django's error to report
        return set()
    return {"password"} if model._meta.concrete_model is user_model._meta.concrete_model else set()


def _sensitive_key_test() -> Callable[[str], bool]:
    """``AUDIT_REDACTION_FIELDS``' key test (its default while the setting is invalid: ``manage.py check``
    reports it). Read from the setting itself: resolving tracking must not load the whole configuration,
    which a change of any rail-django setting triggers."""
    fields = read_setting("AUDIT_REDACTION_FIELDS")
    if not isinstance(fields, (list, tuple)) or not all(isinstance(f, str) for f in fields):
        fields = DEFAULT_REDACTION_FIELDS
    return get_redactor(tuple(f.lower() for f in fields if f), "").is_sensitive_key


def resolve_fields(model: type[models.Model], options: TrackOptions) -> tuple[TrackedField, ...]:
    lookup = field_lookup(model)
    if options.fields is None:
        chosen = [f for f in model._meta.concrete_fields if not getattr(f, "generated", False)]
    else:
        chosen = list(dict.fromkeys(lookup[name] for name in options.fields if name in lookup))
    excluded = {lookup[name].name for name in options.exclude if name in lookup}
    masked = {lookup[name].name for name in options.mask if name in lookup} | _always_masked(model)
    sensitive = _sensitive_key_test()
    return tuple(
        TrackedField(
            name=f.name,
            attname=f.attname,
            column=f.column,
            field=f,
            kind=_kind(f),
            masked=f.name in masked or sensitive(f.name),
            auto_now=bool(getattr(f, "auto_now", False)),
        )
        for f in chosen
        if f.name not in excluded
    )


def _spec(model: type[models.Model], options: TrackOptions) -> TrackedModel:
    concrete = model._meta.concrete_model
    tables = [concrete._meta.db_table] + [parent._meta.db_table for parent in concrete._meta.get_parent_list()]
    return TrackedModel(model=model, options=options, fields=resolve_fields(model, options), tables=tuple(tables))


def _m2m_sides(spec: TrackedModel) -> list[M2MSide]:
    sides = []
    available = m2m_lookup(spec.model)
    wanted = spec.options.m2m
    names = [f.name for f in spec.model._meta.many_to_many] if wanted is None else list(wanted)
    for name in names:
        if name not in available:
            continue
        m2m, forward = available[name]
        through = m2m.remote_field.through
        if isinstance(through, str):  # not resolved: the relation is broken, Django's checks say so
            continue
        sides.append(
            M2MSide(
                spec=spec,
                name=name,
                forward=forward,
                through=through,
                source_attname=through._meta.get_field(m2m.m2m_field_name()).attname,
                target_attname=through._meta.get_field(m2m.m2m_reverse_field_name()).attname,
            )
        )
    return sides


def is_audit_model(model: type[models.Model]) -> bool:
    """The audit table itself is never tracked: each of its rows would record another row."""
    labels = {str(read_setting("AUDIT_EVENT_MODEL")).lower(), "rail_django.auditeventmodel"}
    return model._meta.concrete_model._meta.label_lower in labels


def build_tracking() -> Tracking:
    """Resolve every registration into the lookups the capture layer uses."""
    tracking = Tracking()
    for _ref, model, options in requested_models():
        if model is None or is_audit_model(model):
            continue
        spec = _spec(model, options)
        tracking.specs[model] = spec
        tracking.by_table.setdefault(model._meta.concrete_model._meta.db_table, spec)
    for model in apps.get_models():  # a proxy of a tracked model writes the same rows
        concrete = model._meta.concrete_model
        if model._meta.proxy and model not in tracking.specs and concrete in tracking.specs:
            tracking.specs[model] = _spec(model, tracking.specs[concrete].options)
    for model, spec in list(tracking.specs.items()):
        if model._meta.proxy:
            continue
        for side in _m2m_sides(spec):
            tracking.m2m_sides.setdefault(side.through, []).append(side)
            if not side.through._meta.auto_created:
                tracking.through_sides.setdefault(side.through, []).append(side)
    return tracking


_lock = threading.Lock()
_current: Tracking | None = None
_listeners: list[Callable[[Tracking], None]] = []


def get_tracking() -> Tracking:
    """The resolved tracking (built on first use after the app registry is ready)."""
    global _current
    current = _current
    if current is None:
        with _lock:
            if _current is None:
                _current = build_tracking()
            current = _current
    return current


def on_tracking_change(callback: Callable[[Tracking], None]) -> None:
    """Call ``callback(tracking)`` with the new lookups whenever they are rebuilt."""
    _listeners.append(callback)


def rebuild() -> Tracking:
    """Resolve again (settings changed, or ``track()`` called after start-up) and tell the listeners."""
    global _current
    if not apps.ready:
        return Tracking()
    with _lock:
        try:
            _current = build_tracking()
        except Exception:  # a setting being changed is invalid: keep tracking as it was
            logger.exception("Could not resolve AUDIT_TRACKED_MODELS; model change tracking is unchanged")
            return _current or Tracking()
        current = _current
    for callback in list(_listeners):
        callback(current)
    return current
