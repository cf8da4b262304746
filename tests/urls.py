from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from graphene_django.views import GraphQLView

from rail_django.capture.graphql import AuditGraphQLView
from tests.testapp import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("plain/", views.plain),
    path("emit/", views.emit_view),
    path("token-login/", views.token_login),
    path("failing/", views.failing_view),
    path("async-emit/", views.async_emit_view),
    path("alert/", views.alert_view),
    path("graphql/", GraphQLView.as_view(graphiql=True)),
    path("graphql/audited/", AuditGraphQLView.as_view()),
    path("tracking/", include("tests.testapp.urls")),
]
