from django.urls import path

from tests.testapp import tracking_views

urlpatterns = [
    path("invoices/<int:pk>/update/", tracking_views.update_invoice),
    path("invoices/<int:pk>/update-then-fail/", tracking_views.update_then_fail),
    path("invoices/pay-all/", tracking_views.pay_all),
]
