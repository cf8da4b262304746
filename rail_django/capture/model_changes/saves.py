"""``save()`` and ``delete()`` of tracked models: ``data.create`` / ``data.update`` / ``data.delete``.

Old values are the instance's values as loaded: a ``post_init`` receiver
keeps a copy of the tracked fields (the pattern of Django's "Customizing
model loading"), so an update costs no extra query. A query is made only
when that copy cannot answer: an instance built by hand with the primary
key of an existing row, a field that was deferred when the row was loaded,
or a field saved as an expression (``F("n") + 1``, whose result only the
database knows).
"""

from __future__ import annotations

from typing import Any

from django.db.models.fields import NOT_PROVIDED

from rail_django.capture.model_changes import bulk, record
from rail_django.conf import get_config
from rail_django.events.types import EventType
from rail_django.tracking.registry import JSON, PLAIN, TrackedField, TrackedModel, Tracking
from rail_django.tracking.values import differs, json_diff, json_equal, snapshot_value, to_json

#: The tracked values as loaded (or as last saved), kept on the instance.
LOADED = "_rail_django_loaded"
#: Values read from the database in pre_save when LOADED cannot answer (None: no such row).
FROM_DB = "_rail_django_from_db"
_MISSING = object()

_tracking = Tracking()


def set_tracking(tracking: Tracking) -> None:
    global _tracking
    _tracking = tracking


def _copy(spec: TrackedModel, values: dict[str, Any], attnames: Any = None) -> dict[str, Any]:
    loaded = {}
    for attname, kind in spec.copies:
        if attname in values and (attnames is None or attname in attnames):
            value = values[attname]
            loaded[attname] = value if kind == PLAIN else snapshot_value(kind, value)
    return loaded


def on_post_init(sender: Any, instance: Any, **kwargs: Any) -> None:
    spec = _tracking.specs.get(sender)
    if spec is not None:
        values = instance.__dict__  # deferred fields are absent: reading them would query
        values[LOADED] = _copy(spec, values)


def _read(spec: TrackedModel, using: str, pk: Any, attnames: list[str]) -> dict[str, Any] | None:
    return spec.model._base_manager.using(using).filter(pk=pk).values(*attnames).first()


def _saved_attnames(spec: TrackedModel, update_fields: Any) -> list[str]:
    if update_fields is None:
        return list(spec.attnames)
    names = set(update_fields)
    return [f.attname for f in spec.fields if f.name in names or f.attname in names]


def on_pre_save(sender: Any, instance: Any, raw: bool, using: str, update_fields: Any = None, **kwargs: Any) -> None:
    spec = _tracking.specs.get(sender)
    if spec is None:
        return
    bulk.begin_save(using, spec, instance.pk)
    values = instance.__dict__
    values.pop(FROM_DB, None)
    if instance._state.adding:
        pk_default = spec.pk.has_default() or getattr(spec.pk, "db_default", NOT_PROVIDED) is not NOT_PROVIDED
        if instance.pk is not None and not pk_default:  # Django tries an UPDATE of that row first
            values[FROM_DB] = _read(spec, using, instance.pk, list(spec.attnames))
        return
    loaded = values.get(LOADED) or {}
    missing = [a for a in _saved_attnames(spec, update_fields) if a in values and a not in loaded]
    if missing:  # deferred when loaded, read since: the copy does not know their old value
        values[FROM_DB] = _read(spec, using, instance.pk, missing)


def _pair(tracked: TrackedField, old: Any, new: Any, diff_json: bool = False) -> Any:
    if tracked.masked:
        mask = get_config().redaction_mask
        return [None if old is None else mask, None if new is None else mask]
    if diff_json and tracked.kind == JSON:
        return json_diff(old, new)
    return [to_json(tracked, old), to_json(tracked, new)]


def _created(spec: TrackedModel, values: dict[str, Any]) -> dict[str, Any]:
    return {f.name: _pair(f, None, values[f.attname]) for f in spec.fields if f.attname in values}


def _updated(spec: TrackedModel, instance: Any, using: str, update_fields: Any) -> dict[str, Any]:
    values = instance.__dict__
    loaded = values.get(LOADED) or {}
    from_db = values.pop(FROM_DB, None) or {}
    saved = [a for a in _saved_attnames(spec, update_fields) if a in values]
    expressions = [a for a in saved if hasattr(values[a], "resolve_expression")]
    after = (_read(spec, using, instance.pk, expressions) or {}) if expressions else {}
    changes: dict[str, Any] = {}
    for attname in saved:
        tracked = spec.by_attname[attname]
        old = from_db[attname] if attname in from_db else loaded.get(attname, _MISSING)
        current = after[attname] if attname in after else values[attname]
        if tracked.kind == PLAIN and type(old) is type(current) and old == current:
            continue  # the common case, unchanged: nothing to copy or record
        if tracked.kind == JSON and old is not _MISSING and json_equal(old, current):
            continue
        new = snapshot_value(tracked.kind, current)  # a copy: later in-place edits of a document do not reach it
        if old is not _MISSING and differs(tracked, old, new):
            changes[tracked.name] = _pair(tracked, old, new, diff_json=True)
        loaded[attname] = new
    values[LOADED] = loaded
    if changes and all(spec.by_attname[f.attname].auto_now for f in spec.fields if f.name in changes):
        return {}  # only an auto_now timestamp moved: the save changed nothing
    return changes


def on_post_save(sender: Any, instance: Any, created: bool, raw: bool, using: str, update_fields: Any = None,
                 **kwargs: Any) -> None:
    spec = _tracking.specs.get(sender)
    if spec is None:
        return
    bulk.end_save(using, spec)
    values = instance.__dict__
    if created:
        values.pop(FROM_DB, None)
        changes = _created(spec, values)
        values[LOADED] = _copy(spec, values)
        event_type, verb = EventType.DATA_CREATE, "create"
    else:
        changes = _updated(spec, instance, using, update_fields)
        if not changes:
            return
        event_type, verb = EventType.DATA_UPDATE, "update"
    record.on_commit(
        using, event_type=event_type, action=f"{verb} {spec.model_label}", resource_type=spec.label,
        resource_id=str(instance.pk), resource_name=record.describe(instance), context={"changes": changes},
    )


def on_post_delete(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    spec = _tracking.specs.get(sender)
    if spec is None:
        return
    values = instance.__dict__
    loaded = values.get(LOADED) or {}
    changes = {}
    for tracked in spec.fields:
        old = loaded.get(tracked.attname, values.get(tracked.attname, _MISSING))
        if old is not _MISSING:
            changes[tracked.name] = _pair(tracked, old, None)
    record.on_commit(
        using, event_type=EventType.DATA_DELETE, action=f"delete {spec.model_label}", resource_type=spec.label,
        resource_id=str(instance.pk), resource_name=record.describe(instance), context={"changes": changes},
    )
