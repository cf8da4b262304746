"""URLs of the no-code event tests: Django's own auth views and the admin, plus views that deny."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from tests.events import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("password_change/", auth_views.PasswordChangeView.as_view(success_url="/done/"), name="password_change"),
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(success_url="/done/"),
        name="password_reset_confirm",
    ),
    path("denied/function/", views.denied_function, name="denied-function"),
    path("denied/class/", views.DeniedClassView.as_view(), name="denied-class"),
    path("denied/emitting/", views.denied_after_emit),
    path("permission-required/", views.needs_permission, name="needs-permission"),
    path("form/", views.csrf_form, name="csrf-form"),
    path("plain/", views.plain),
]
