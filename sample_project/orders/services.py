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
        resource_type="order",
        resource_name=order.number,
        resource_id=order.pk,
    )
    raise PermissionDenied(f"You may not {verb} orders ({permission}).")


def approve(user: Any, order: Order) -> Order:
    """Approve ``order`` as ``user``; records ``data.update`` or ``authz.permission.denied``."""
    if not user.has_perm("orders.approve_order"):
        _refuse(user, order, "orders.approve_order", "approve")
    with transaction.atomic():
        order.status = Order.APPROVED
        order.approved_by = user
        order.save(update_fields=["status", "approved_by"])
    security.emit(
        EventType.DATA_UPDATE,
        action="Approved order",
        context={"amount": str(order.amount), "customer": order.customer},
        resource_type="order",
        resource_name=order.number,
        resource_id=order.pk,
    )
    return order


def delete(user: Any, order: Order) -> None:
    """Delete ``order`` as ``user``; records ``data.delete`` or ``authz.permission.denied``."""
    if not user.has_perm("orders.delete_order"):
        _refuse(user, order, "orders.delete_order", "delete")
    number, pk = order.number, order.pk
    order.delete()
    security.emit(EventType.DATA_DELETE, action="Deleted order", resource_type="order", resource_name=number, resource_id=pk)
