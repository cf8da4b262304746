"""What a user may do to an order, and the audit events it leaves: one place for the views and the GraphQL API."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

from orders.models import Order
from rail_django.security import EventType, Outcome, security


def _refuse(user: Any, order: Order, permission: str, verb: str) -> None:
    security.emit(
        EventType.AUTHZ_PERMISSION_DENIED,
        outcome=Outcome.DENIED,
        action=f"{verb.capitalize()} order refused",
        context={"permission": permission},
        resource_type=order._meta.label_lower,  # "orders.order", as the tracked changes: one history
        resource_name=order.number,
        resource_id=order.pk,
    )
    raise PermissionDenied(f"You may not {verb} orders ({permission}).")


def approve(user: Any, order: Order) -> Order:
    """Approve ``order`` as ``user``. ``Order`` is tracked, so the save records ``data.update`` with the
    diff (status, approved_by) when the transaction commits; a refusal records ``authz.permission.denied``."""
    if not user.has_perm("orders.approve_order"):
        _refuse(user, order, "orders.approve_order", "approve")
    with transaction.atomic():
        order.status = Order.APPROVED
        order.approved_by = user
        order.save(update_fields=["status", "approved_by"])
    return order


def delete(user: Any, order: Order) -> None:
    """Delete ``order`` as ``user``: the tracked delete records ``data.delete`` with the order's last
    values; a refusal records ``authz.permission.denied``."""
    if not user.has_perm("orders.delete_order"):
        _refuse(user, order, "orders.delete_order", "delete")
    order.delete()
