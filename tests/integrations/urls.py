"""URLs of the integration tests: DRF (token, JWT), django-hijack, Celery."""

from django.contrib.auth import views as auth_views
from django.urls import include, path
from rest_framework_simplejwt.views import TokenObtainPairView

from tests.events import views as event_views
from tests.integrations import drf_views, views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("api/whoami/", drf_views.WhoAmI.as_view(), name="whoami"),
    path("api/admins/", drf_views.AdminsOnly.as_view(), name="admins-only"),
    path("api/throttled/", drf_views.Throttled.as_view(), name="throttled"),
    path("api/token/", TokenObtainPairView.as_view(), name="token-obtain"),
    path("hijack/", include("hijack.urls")),
    path("emit/", views.emit),
    path("queue/", views.queue_export),
    path("plain/", event_views.plain),
]
