from django.contrib import admin

from orders.models import Order
from rail_django.tracking.admin import AuditHistoryMixin


@admin.register(Order)
class OrderAdmin(AuditHistoryMixin, admin.ModelAdmin):
    """An order's "History" page lists its audit events with each change's diff."""

    list_display = ("number", "customer", "amount", "status", "approved_by")
    list_filter = ("status",)
