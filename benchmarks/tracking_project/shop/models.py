"""The model every variant writes: the same fields; only the reference packages' registration differs."""

from django.conf import settings
from django.db import models

if settings.VARIANT == "simple-history":
    from simple_history.models import HistoricalRecords


class Customer(models.Model):
    name = models.CharField(max_length=100)


class Invoice(models.Model):
    number = models.CharField(max_length=20, unique=True)
    kind = models.CharField(max_length=10, default="request")
    customer = models.ForeignKey(Customer, null=True, on_delete=models.SET_NULL)
    amount = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    status = models.CharField(max_length=10, default="draft")
    due_at = models.DateTimeField(null=True)
    notes = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    if settings.VARIANT == "simple-history":
        history = HistoricalRecords()

    def __str__(self) -> str:
        return self.number


if settings.VARIANT == "pghistory":
    import pghistory

    Invoice = pghistory.track()(Invoice)
