"""Many-to-many changes: ``add`` / ``remove`` / ``clear`` / ``set`` as ``data.update`` with the ids added and removed.

Changes made from either end of the relation are recorded for each tracked
end (the declaring model's field, and a reverse accessor when it is named in
``m2m``). ``set()``, which Django runs as a removal then an addition, is
one event. Rows of an explicit ``through`` model created or deleted directly
(``InvoiceLine.objects.create(...)``) are many-to-many changes too.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import models, transaction

from rail_django.capture.model_changes import bulk, record
from rail_django.events.types import EventType
from rail_django.tracking.registry import M2MSide, Tracking

_tracking = Tracking()
#: Related ids read at pre_clear (Django sends none), by (through, instance, reverse).
_clearing: ContextVar[dict[tuple[Any, ...], list[Any]] | None] = ContextVar("rail_django_m2m_clearing", default=None)
#: Through models whose rows Django is deleting for a remove()/clear(): their post_delete is not a second change.
_removing: ContextVar[frozenset[Any]] = ContextVar("rail_django_m2m_removing", default=frozenset())
#: Removals recorded per object and relation, which an addition right after joins (``set()``).
_removals: ContextVar[dict[tuple[Any, ...], Pending] | None] = ContextVar("rail_django_m2m_removals", default=None)


def set_tracking(tracking: Tracking) -> None:
    global _tracking
    _tracking = tracking


@dataclass
class Pending:
    alias: str
    epoch: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    emitted: bool = False


def _event(side: M2MSide, using: str, obj: Any, pk: Any, added: list[str], removed: list[str]) -> Pending:
    """Schedule one ``data.update`` for ``obj`` (or ``pk`` when it was not loaded); returns its lists."""
    pending = Pending(alias=using, epoch=bulk.savepoint_epoch(), added=added, removed=removed)
    spec = side.spec
    name = record.describe(obj) if obj is not None else None

    def emit() -> None:
        pending.emitted = True
        record.emit_change(
            EventType.DATA_UPDATE, action=f"update {spec.model_label} ({side.name})", resource_type=spec.label,
            resource_id=str(pk), resource_name=name,
            context={"m2m": {side.name: {"added": [], "removed": []}}},
            lists={("m2m", side.name, "added"): pending.added, ("m2m", side.name, "removed"): pending.removed},
        )

    record.defer(using, emit)
    return pending


def _ids(values: Any) -> list[str]:
    return sorted((str(v) for v in values), key=lambda s: (len(s), s))


def _objects(side: M2MSide, using: str, pks: Any) -> dict[Any, Any]:
    """The objects of this end with these keys, for their names (one query)."""
    try:
        return side.spec.model._base_manager.using(using).in_bulk(list(pks))
    except Exception:
        return {}


def _join_set(key: tuple[Any, ...], using: str, added: list[str]) -> bool:
    """Add ``added`` to the removal just recorded for the same object, when nothing can part them."""
    removals = _removals.get()
    last = removals.pop(key, None) if removals else None
    if (last is None or last.emitted or last.alias != using or last.added
            or last.epoch != bulk.savepoint_epoch() or transaction.get_autocommit(using=using)):
        return False
    last.added.extend(added)
    return True


def _record(side: M2MSide, instance: Any, reverse: bool, using: str, pks: list[Any], removing: bool) -> None:
    if not pks:
        return
    instance_side = side.forward != reverse
    if instance_side:
        ids = _ids(pks)
        key = (side.through, side.name, type(instance), instance.pk)
        if not removing and _join_set(key, using, ids):
            return
        pending = _event(side, using, instance, instance.pk, [] if removing else ids, ids if removing else [])
        if removing:
            # Only the latest removal per object is kept: one set() is a removal then an addition.
            _removals.set({key: pending})
        return
    objects = _objects(side, using, pks)
    for pk in pks:
        one = [str(instance.pk)]
        _event(side, using, objects.get(pk), pk, [] if removing else one, one if removing else [])


def _related_ids(through: Any, instance: Any, reverse: bool, using: str, side: M2MSide) -> list[Any]:
    own, other = (side.target_attname, side.source_attname) if reverse else (side.source_attname, side.target_attname)
    return list(through._base_manager.using(using).filter(**{own: instance.pk}).values_list(other, flat=True))


def on_m2m_changed(sender: Any, instance: Any, action: str, reverse: bool, model: Any, pk_set: Any,
                   using: str, **kwargs: Any) -> None:
    sides = _tracking.m2m_sides.get(sender)
    if not sides:
        return
    key = (sender, id(instance), reverse)
    if action in ("pre_remove", "pre_clear"):
        _removing.set(_removing.get() | {sender})
        if action == "pre_clear":
            _clearing.set({**(_clearing.get() or {}), key: _related_ids(sender, instance, reverse, using, sides[0])})
        return
    if action in ("post_remove", "post_clear"):
        _removing.set(_removing.get() - {sender})
    if action == "post_clear":
        clearing = dict(_clearing.get() or {})
        pks = clearing.pop(key, [])
        _clearing.set(clearing)
    elif action in ("post_add", "post_remove"):
        pks = list(pk_set or ())
    else:
        return
    for side in sides:
        _record(side, instance, reverse, using, pks, removing=action != "post_add")


def _through_row(sender: Any, instance: Any, using: str, removing: bool, origin: Any = None) -> None:
    if sender in _removing.get():
        return  # Django is deleting these rows for a remove()/clear(): recorded from m2m_changed
    values = instance.__dict__
    for side in _tracking.through_sides.get(sender, ()):
        own, other = (side.source_attname, side.target_attname) if side.forward else (side.target_attname, side.source_attname)
        pk, other_pk = values.get(own), values.get(other)
        if pk is None or other_pk is None or _deleting(origin, side, pk):
            continue
        obj = _objects(side, using, [pk]).get(pk)
        one = [str(other_pk)]
        _event(side, using, obj, pk, [] if removing else one, one if removing else [])


def _deleting(origin: Any, side: M2MSide, pk: Any) -> bool:
    """True when the object of this end is itself being deleted (its rows go with it)."""
    if isinstance(origin, models.Model):
        return isinstance(origin, side.spec.model) and origin.pk == pk
    if isinstance(origin, models.QuerySet):
        return issubclass(origin.model, side.spec.model._meta.concrete_model)
    return False


def on_through_saved(sender: Any, instance: Any, created: bool, using: str, **kwargs: Any) -> None:
    if created:
        _through_row(sender, instance, using, removing=False)


def on_through_deleted(sender: Any, instance: Any, using: str, origin: Any = None, **kwargs: Any) -> None:
    _through_row(sender, instance, using, removing=True, origin=origin)
