from django.contrib import admin

from rail_django.tracking.admin import AuditHistoryMixin
from tests.testapp.models import Invoice


@admin.register(Invoice)
class InvoiceAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ("number", "amount", "status")
