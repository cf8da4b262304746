"""Real models for the change-tracking tests (tests/tracking/).

They cover the field kinds whose values need care in a diff: a foreign key
(raw id), many-to-many with and without ``through``, ``JSONField`` (JSON
Pointer paths), ``DecimalField`` (a string), ``DateTimeField`` (ISO 8601), a
file field (its name), a UUID primary key, an ``auto_now`` timestamp.
"""

from __future__ import annotations

import uuid

from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField(blank=True, default="")

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    """A UUID primary key (its default makes every save() of a new instance an INSERT)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=10, decimal_places=2, default=0)

    def __str__(self) -> str:
        return self.name


class Invoice(models.Model):
    DRAFT, SENT, PAID = "draft", "sent", "paid"
    STATUSES = [(DRAFT, "Draft"), (SENT, "Sent"), (PAID, "Paid")]

    number = models.CharField(max_length=20, unique=True)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="invoices")
    amount = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    status = models.CharField(max_length=10, choices=STATUSES, default=DRAFT)
    due_at = models.DateTimeField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    attachment = models.FileField(upload_to="invoices/", blank=True)
    card_number = models.CharField(max_length=32, blank=True, default="")  # docs/tracking.md's masked field
    iban = models.CharField(max_length=34, blank=True, default="")  # masked in tests/settings.py
    api_key = models.CharField(max_length=64, blank=True, default="")
    notes = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="invoices")
    products = models.ManyToManyField(Product, through="InvoiceLine", blank=True, related_name="invoices")

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"Invoice {self.number}"


class InvoiceLine(models.Model):
    """The explicit ``through`` model of ``Invoice.products``."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE)
    product = models.ForeignKey(Product, on_delete=models.CASCADE)
    quantity = models.PositiveIntegerField(default=1)


class Memo(models.Model):
    """Never tracked: writes to it must record nothing."""

    text = models.CharField(max_length=100)


class PaidInvoice(Invoice):
    """A proxy: its writes are the tracked invoices' rows."""

    class Meta:
        proxy = True
