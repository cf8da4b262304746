from django.conf import settings
from django.db import models

from rail_django.tracking import track


# Every create, update, delete and bulk change of an order is recorded with its field diff
# (the same as AUDIT_TRACKED_MODELS = {"orders.Order": {}} in settings); see docs/tracking.md.
@track()
class Order(models.Model):
    """A customer order that staff approve (clerks and managers) or delete (managers only)."""

    PENDING = "pending"
    APPROVED = "approved"
    STATUSES = [(PENDING, "Pending"), (APPROVED, "Approved")]

    number = models.CharField(max_length=20, unique=True)
    customer = models.CharField(max_length=100)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=10, choices=STATUSES, default=PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["number"]
        permissions = [("approve_order", "Can approve order")]

    def __str__(self) -> str:
        return self.number
