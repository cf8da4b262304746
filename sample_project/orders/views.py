from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from orders import services
from orders.models import Order


@login_required
@permission_required("orders.view_order", raise_exception=True)
def order_list(request: HttpRequest) -> HttpResponse:
    return render(request, "orders/order_list.html", {"orders": Order.objects.select_related("approved_by")})


@require_POST
@login_required
def approve(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order, pk=pk)
    try:
        services.approve(request.user, order)
    except PermissionDenied as exc:
        return render(request, "orders/denied.html", {"reason": str(exc)}, status=403)
    messages.success(request, f"Order {order.number} approved.")
    return redirect("orders:list")


@require_POST
@login_required
def delete(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order, pk=pk)
    try:
        services.delete(request.user, order)
    except PermissionDenied as exc:
        return render(request, "orders/denied.html", {"reason": str(exc)}, status=403)
    messages.success(request, f"Order {order.number} deleted.")
    return redirect("orders:list")
