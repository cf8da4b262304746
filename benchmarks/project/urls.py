from django.conf import settings
from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from graphene_django.views import GraphQLView

from benchmarks.project import views

if settings.VARIANT == "auditlog":
    from auditlog.registry import auditlog
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    auditlog.register(Group)
    auditlog.register(get_user_model())

urlpatterns = [
    path("plain/", views.plain),
    path("me/", views.me),
    path("emit/", views.emit),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("graphql/", csrf_exempt(GraphQLView.as_view())),
]
