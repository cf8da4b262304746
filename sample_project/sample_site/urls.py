from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from rail_django.security.graphql import AuditGraphQLView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="orders:list", permanent=False)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("orders/", include("orders.urls")),
    # CSRF-protected like any other view: the page's fetch() sends the X-CSRFToken header.
    path("graphql/", AuditGraphQLView.as_view(graphiql=settings.DEBUG), name="graphql"),
    path("admin/", admin.site.urls),
]
