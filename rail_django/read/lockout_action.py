"""The admin action that lifts login lockouts, on the audit events' change list."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages

from rail_django.conf import read_setting

#: At most this many selected events are read for their IP and username.
MAX_SELECTED = 1000


def can_reset_lockouts(request: Any) -> bool:
    """Superusers, while ``AUDIT_LOCKOUT_ENABLED`` is on (otherwise there is nothing to lift)."""
    return read_setting("AUDIT_LOCKOUT_ENABLED") is True and bool(getattr(request.user, "is_superuser", False))


def _targets(row: Any) -> tuple[str | None, str | None]:
    context = (row.additional_data or {}).get("context") or {}
    subject = context.get("subject") if isinstance(context.get("subject"), dict) else {}
    ip = subject.get("ip_address") or row.client_ip
    username = subject.get("username") or context.get("username_attempted") or row.username
    return ip, username


@admin.action(description="Lift login lockouts of the selected events' IP address and username",
              permissions=["reset_lockout"])
def reset_lockouts(modeladmin: Any, request: Any, queryset: Any) -> None:
    from rail_django.operations.lockout import lift_lockouts

    pairs = {_targets(row) for row in queryset.only("client_ip", "username", "additional_data")[:MAX_SELECTED]}
    lifted = [lock for ip, username in pairs if ip or username
              for lock in lift_lockouts(ip, username, via="admin", request=request)]
    level = messages.SUCCESS if lifted else messages.INFO
    modeladmin.message_user(request, f"Lifted {len(lifted)} lockout(s).", level)
