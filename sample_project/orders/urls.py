from django.urls import path

from orders import views

app_name = "orders"
urlpatterns = [
    path("", views.order_list, name="list"),
    path("<int:pk>/approve/", views.approve, name="approve"),
    path("<int:pk>/delete/", views.delete, name="delete"),
]
