"""``track()``: registering a model for change tracking in code.

The same options as a value of ``AUDIT_TRACKED_MODELS``. Registrations are
only recorded here (a model may be decorated while Django is still loading
models); :mod:`rail_django.tracking.registry` resolves them into field lists
once the app registry is ready, and ``manage.py check`` reports unknown names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from django.db import models

M = TypeVar("M", bound=type[models.Model])

#: The options a tracked model accepts, in ``track()`` and in ``AUDIT_TRACKED_MODELS``.
OPTION_NAMES = ("fields", "exclude", "mask", "m2m")


@dataclass(frozen=True)
class TrackOptions:
    """What to record for one model.

    ``fields``: concrete fields to track (``None``: every concrete field);
    ``exclude``: fields never recorded; ``mask``: fields whose change is
    recorded with each value replaced by ``AUDIT_REDACTION_MASK``; ``m2m``:
    many-to-many fields to track (``None``: every forward many-to-many field;
    a reverse accessor, e.g. ``"invoices"``, is tracked only when named).
    """

    fields: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    mask: tuple[str, ...] = ()
    m2m: tuple[str, ...] | None = None

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> TrackOptions:
        """Options from a settings entry (unknown keys are reported by ``manage.py check``)."""
        return cls(
            fields=_names(values.get("fields")),
            exclude=_names(values.get("exclude")) or (),
            mask=_names(values.get("mask")) or (),
            m2m=_names(values.get("m2m")),
        )


def _names(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):  # a lone name is a common slip for a one-item list
        return (value,)
    if isinstance(value, Iterable):
        return tuple(str(name) for name in value)
    return None


#: Registrations made with ``track()``: model (class or "app_label.ModelName") -> options.
_registered: dict[Any, TrackOptions] = {}
_listeners: list[Callable[[], None]] = []


def code_registrations() -> dict[Any, TrackOptions]:
    """The ``track()`` registrations, in the order they were made."""
    return dict(_registered)


def on_registration(callback: Callable[[], None]) -> None:
    """Call ``callback()`` after each ``track()`` call (the capture layer re-resolves)."""
    _listeners.append(callback)


def _register(model: Any, options: TrackOptions) -> None:
    _registered[model] = options
    for callback in list(_listeners):
        callback()


@overload
def track(
    model: M, *, fields: Iterable[str] | None = ..., exclude: Iterable[str] = ...,
    mask: Iterable[str] = ..., m2m: Iterable[str] | None = ...,
) -> M: ...


@overload
def track(
    model: None = ..., *, fields: Iterable[str] | None = ..., exclude: Iterable[str] = ...,
    mask: Iterable[str] = ..., m2m: Iterable[str] | None = ...,
) -> Callable[[M], M]: ...


def track(
    model: Any = None,
    *,
    fields: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    mask: Iterable[str] = (),
    m2m: Iterable[str] | None = None,
) -> Any:
    """Record every create, update, delete, many-to-many and bulk change of ``model``.

    ``track(Order, exclude=["updated_at"], mask=["card_number"])``, or as a
    class decorator: ``@track(exclude=["updated_at"])`` above the model.
    ``model`` may also be an ``"app_label.ModelName"`` string. An entry for
    the same model in ``AUDIT_TRACKED_MODELS`` takes precedence.
    """
    options = TrackOptions(
        fields=_names(fields),
        exclude=_names(exclude) or (),
        mask=_names(mask) or (),
        m2m=_names(m2m),
    )
    if model is None:
        def decorator(cls: M) -> M:
            _register(cls, options)
            return cls

        return decorator
    _register(model, options)
    return model


def untrack(model: Any) -> None:
    """Forget a ``track()`` registration (for tests and for projects that switch tracking off)."""
    if _registered.pop(model, None) is not None:
        for callback in list(_listeners):
            callback()
