from django.urls import path

from benchmarks.tracking_project import views

urlpatterns = [path("invoices/<int:pk>/update/", views.update_invoice)]
