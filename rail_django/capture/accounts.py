"""Accounts and privileges: the user model's and groups' changes, from Django's model signals.

Connected in ``RailDjangoConfig.ready()`` (:func:`connect`) for the active
user model and ``auth.Group``:

- ``post_save`` of a new user -> ``auth.account.created`` (and a role event for
  each of ``is_staff`` / ``is_superuser`` it starts with);
- a saved change of the password hash -> ``auth.password.changed``;
  ``is_staff`` / ``is_superuser`` -> ``authz.role.assigned`` / ``revoked``;
  ``is_active`` -> ``auth.account.disabled`` / ``enabled``;
- ``post_delete`` -> ``auth.account.deleted``;
- ``m2m_changed`` of ``User.groups``, ``User.user_permissions`` and
  ``Group.permissions``, from either side, with ``add``, ``remove``, ``clear``
  and ``set`` -> one role event per (user or group, group or permission) pair.

``AUDIT_ACCOUNT_EVENTS = False`` turns all of this off (for a project that
records account changes with another tool). The previous values are read from the database in ``pre_save``, and only for
a save that can change them (``save(update_fields=["last_login"])`` at each
login reads nothing). Events are emitted when the transaction commits, so a
rolled-back change records nothing. The hash itself is never put in an event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from rail_django.capture.context import get_current_context, reset_current_context, set_current_context
from rail_django.conf import get_config, read_setting
from rail_django.events.types import EventType, Severity
from rail_django.security.api import security

logger = logging.getLogger("rail_django.audit")

#: The role flags whose switch is a privilege change.
ROLE_FLAGS = ("is_staff", "is_superuser")
_WATCHED = ("password", "is_staff", "is_superuser", "is_active")
_BEFORE = "_rail_django_account_before"  # our attribute on the instance being saved
_STASH = "_rail_django_m2m_stash"


def recording() -> bool:
    """Audit logging on, and ``AUDIT_ACCOUNT_EVENTS`` not turned off."""
    return get_config().enabled and read_setting("AUDIT_ACCOUNT_EVENTS") is not False


def _field_names(model: Any) -> set[str]:
    return {field.name for field in model._meta.get_fields()}


def _after_commit(using: str, emit: Callable[[], None]) -> None:
    """Run ``emit`` when the transaction commits (at once in autocommit), in today's audit context."""
    ctx = get_current_context()

    def run() -> None:
        token = set_current_context(ctx) if get_current_context() is not ctx else None
        try:
            emit()
        except Exception:  # never into the code that committed
            logger.exception("Could not record an account change")
        finally:
            if token is not None:
                reset_current_context(token)

    transaction.on_commit(run, using=using)


def describe_target(user: Any) -> dict[str, Any]:
    """The ``resource_*`` arguments and context naming the user an event is about."""
    username = user.get_username()
    return {
        "resource_type": user._meta.label_lower,
        "resource_id": user.pk,
        "resource_name": username,
        "context": {"target_user_id": str(user.pk), "target_username": username},
    }


def _emit_about(user: Any, event_type: EventType, action: str, severity: Severity | None = None, **extra: Any) -> None:
    target = describe_target(user)
    target["context"].update(extra)
    security.emit(event_type, action=action, severity=severity, **target)


def _role_event(flag: str, on: bool) -> tuple[EventType, Severity | None]:
    if on:
        return EventType.AUTHZ_ROLE_ASSIGNED, Severity.CRITICAL if flag == "is_superuser" else None
    return EventType.AUTHZ_ROLE_REVOKED, None


# -- the user row --------------------------------------------------------------------------------


def on_user_pre_save(sender: Any, instance: Any, raw: bool = False, using: str = "default",
                     update_fields: Iterable[str] | None = None, **kwargs: Any) -> None:
    """Remember the watched values the database holds before this save (one query, when they may change)."""
    if raw or not recording():
        return
    watched = [name for name in _WATCHED if name in _field_names(sender)]
    if update_fields is not None:
        watched = [name for name in watched if name in update_fields]
    if not watched or instance.pk is None:
        return
    before = sender._default_manager.using(using).filter(pk=instance.pk).values(*watched).first()
    instance.__dict__[_BEFORE] = before


def on_user_post_save(sender: Any, instance: Any, created: bool = False, raw: bool = False,
                      using: str = "default", **kwargs: Any) -> None:
    if raw or not recording():
        return
    before = instance.__dict__.pop(_BEFORE, None)
    if created:
        flags = {flag: True for flag in ROLE_FLAGS if getattr(instance, flag, False) is True}
        _after_commit(using, lambda: _record_created(instance, flags))
    elif before:
        changes = {name: value for name, value in before.items() if getattr(instance, name) != value}
        if changes:
            _after_commit(using, lambda: _record_changes(instance, changes))


def _record_created(user: Any, flags: dict[str, bool]) -> None:
    _emit_about(user, EventType.AUTH_ACCOUNT_CREATED, f"Account {user.get_username()} created", **flags)
    for flag in flags:
        event_type, severity = _role_event(flag, True)
        _emit_about(user, event_type, f"{flag} switched on for a new account", severity, flag=flag, value=True)


def _record_changes(user: Any, before: dict[str, Any]) -> None:
    """One event per watched value that changed (``before`` holds only those)."""
    name = user.get_username()
    if "password" in before:  # compared, never recorded: the hash stays out of every sink
        _emit_about(user, EventType.AUTH_PASSWORD_CHANGED, f"Password of {name} changed",
                    usable=user.has_usable_password())
    for flag in ROLE_FLAGS:
        if flag in before:
            on = bool(getattr(user, flag))
            event_type, severity = _role_event(flag, on)
            _emit_about(user, event_type, f"{flag} switched {'on' if on else 'off'} for {name}", severity,
                        flag=flag, value=on)
    if "is_active" in before:
        if user.is_active:
            _emit_about(user, EventType.AUTH_ACCOUNT_ENABLED, f"Account {name} enabled", flag="is_active", value=True)
        else:
            _emit_about(user, EventType.AUTH_ACCOUNT_DISABLED, f"Account {name} disabled", flag="is_active", value=False)


def on_user_post_delete(sender: Any, instance: Any, using: str = "default", **kwargs: Any) -> None:
    if not recording():
        return
    _after_commit(using, lambda: _emit_about(instance, EventType.AUTH_ACCOUNT_DELETED,
                                             f"Account {instance.get_username()} deleted"))


# -- group membership and permissions (m2m_changed) ----------------------------------------------


class _Relation:
    """One many-to-many relation whose changes are privilege changes."""

    def __init__(self, source: Any, field: str, kind: str) -> None:
        self.source, self.field, self.kind = source, field, kind  # kind: "group" or "permission"
        self.target = source._meta.get_field(field).related_model

    def related_pks(self, instance: Any, reverse: bool, using: str) -> set[Any]:
        """The pks on the other side that ``instance`` is linked to now."""
        if reverse:  # instance is a group/permission: the users/groups that hold it
            query = self.source._default_manager.using(using).filter(**{self.field: instance})
        else:
            query = getattr(instance, self.field).using(using).all()
        return set(query.values_list("pk", flat=True))


def _describe_holder(obj: Any) -> dict[str, Any]:
    if isinstance(obj, Group):
        return {"resource_type": obj._meta.label_lower, "resource_id": obj.pk, "resource_name": obj.name,
                "context": {"group": obj.name, "group_id": str(obj.pk)}}
    return describe_target(obj)


def _describe_granted(obj: Any, kind: str) -> dict[str, Any]:
    if kind == "group":
        return {"group": obj.name, "group_id": str(obj.pk)}
    return {"permission": f"{obj.content_type.app_label}.{obj.codename}"}


def _record_m2m(relation: _Relation, instance: Any, reverse: bool, pks: set[Any], added: bool, operation: str,
                using: str) -> None:
    other = relation.source if reverse else relation.target
    others = list(other._default_manager.using(using).filter(pk__in=pks).order_by("pk"))
    pairs = [(obj, instance) for obj in others] if reverse else [(instance, obj) for obj in others]
    event_type = EventType.AUTHZ_ROLE_ASSIGNED if added else EventType.AUTHZ_ROLE_REVOKED
    for holder, granted in pairs:
        fields = _describe_holder(holder)
        granted_facts = _describe_granted(granted, relation.kind)
        fields["context"].update(granted_facts, operation=operation)
        what = granted_facts.get("group") or granted_facts.get("permission")
        verb = "granted to" if added else "taken from"
        security.emit(event_type, action=f"{relation.kind} {what} {verb} {fields['resource_name']}", **fields)


def _m2m_receiver(relation: _Relation) -> Callable[..., None]:
    def receiver(sender: Any, instance: Any, action: str, reverse: bool, model: Any, pk_set: set | None,
                 using: str, **kwargs: Any) -> None:
        if not recording():
            return
        stash = instance.__dict__.setdefault(_STASH, {})
        if action in ("pre_clear", "pre_remove"):
            # clear() names nothing and remove() names what was asked, linked or not: read what is linked.
            linked = relation.related_pks(instance, reverse, using)
            stash[(sender, action)] = linked if action == "pre_clear" else linked & set(pk_set or ())
            return
        if action == "post_add":
            pks, added, operation = set(pk_set or ()), True, "add"
        elif action in ("post_remove", "post_clear"):
            pks, added, operation = stash.pop((sender, "pre_" + action[5:]), set()), False, action[5:]
        else:
            return
        if pks:
            _after_commit(using, lambda: _record_m2m(relation, instance, reverse, pks, added, operation, using))

    return receiver


_receivers: list[Callable[..., None]] = []  # signals hold weak references: keep ours alive


def connect() -> None:
    """Connect the receivers for the active user model and ``auth.Group`` (from ``ready()``)."""
    user_model = get_user_model()
    pre_save.connect(on_user_pre_save, sender=user_model, dispatch_uid="rail_django.accounts.pre_save")
    post_save.connect(on_user_post_save, sender=user_model, dispatch_uid="rail_django.accounts.post_save")
    post_delete.connect(on_user_post_delete, sender=user_model, dispatch_uid="rail_django.accounts.post_delete")
    fields = _field_names(user_model)
    relations = [_Relation(Group, "permissions", "permission")]
    relations += [_Relation(user_model, name, kind) for name, kind in (("groups", "group"),
                                                                       ("user_permissions", "permission"))
                  if name in fields]
    for relation in relations:
        receiver = _m2m_receiver(relation)
        _receivers.append(receiver)
        through = relation.source._meta.get_field(relation.field).remote_field.through
        m2m_changed.connect(receiver, sender=through, dispatch_uid=f"rail_django.accounts.{through._meta.label}")
