"""Views that change tracked models, called through the real test client (tests/tracking/)."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from tests.testapp.models import Invoice


@csrf_exempt
@require_POST
def update_invoice(request: HttpRequest, pk: int) -> JsonResponse:
    """Three fields changed through ``save()``, as a form view would."""
    invoice = get_object_or_404(Invoice, pk=pk)
    invoice.amount = Decimal(request.POST["amount"])
    invoice.status = request.POST.get("status", invoice.status)
    invoice.customer_id = request.POST.get("customer") or invoice.customer_id
    invoice.save()
    if request.POST.get("fail_after_save"):
        raise ValueError("failed after the save")  # with ATOMIC_REQUESTS the save rolls back
    return JsonResponse({"ok": True})


@csrf_exempt
@require_POST
def pay_all(request: HttpRequest) -> JsonResponse:
    """A bulk write in a view: ``QuerySet.update()``."""
    count = Invoice.objects.filter(status=Invoice.SENT).update(status=Invoice.PAID)
    return JsonResponse({"count": count})


@csrf_exempt
@require_POST
def update_then_fail(request: HttpRequest, pk: int) -> JsonResponse:
    """Saves inside a transaction that the view then rolls back: nothing may be recorded."""
    try:
        with transaction.atomic():
            invoice = Invoice.objects.get(pk=pk)
            invoice.amount = Decimal("999.00")
            invoice.save()
            raise ValueError("validation failed after the save")
    except ValueError:
        return JsonResponse({"ok": False}, status=400)
