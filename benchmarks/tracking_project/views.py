from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from benchmarks.tracking_project.shop.models import Invoice


@csrf_exempt
@login_required
def update_invoice(request: HttpRequest, pk: int) -> HttpResponse:
    """The measured request: a logged-in user's form post loads an invoice, changes three fields, save()."""
    invoice = Invoice.objects.get(pk=pk)
    invoice.amount = Decimal(request.POST["amount"])
    invoice.status = request.POST["status"]
    invoice.customer_id = int(request.POST["customer"])
    invoice.save()
    return HttpResponse("ok")
