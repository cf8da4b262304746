"""The views every variant serves; only ``emit`` differs (each package's own way to record a custom event)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse

VARIANT = settings.VARIANT
_REPORT = Group(pk=7, name="q3 report")  # the audited "resource" (never saved)


def plain(request):
    return HttpResponse("ok")


def me(request):
    """An authenticated page: the session and the user are loaded."""
    if not request.user.is_authenticated:
        return HttpResponseForbidden("log in first")
    return HttpResponse(f"hello {request.user.get_username()}")


def emit(request):
    """Records one custom event with the package's own API (404 where it has none).

    Every variant reads ``request.user`` first, as a view in a logged-in area
    does, so the figure is the cost of recording the event, not of loading the
    session and user that the event names.
    """
    if not request.user.is_authenticated:
        return HttpResponseForbidden("log in first")
    if VARIANT in ("rail", "rail-sync", "rail-drain"):
        from rail_django.security import EventType, security

        event = security.emit(
            EventType.DATA_READ,
            action="Viewed report",
            context={"report": "q3", "format": "pdf"},
            resource_type="report",
            resource_id=7,
        )
        return JsonResponse({"event_id": str(event.event_id)})
    if VARIANT == "auditlog":
        from auditlog.models import LogEntry

        entry = LogEntry.objects.log_create(_REPORT, force_log=True, action=LogEntry.Action.ACCESS, changes={})
        return JsonResponse({"event_id": entry.pk})
    if VARIANT == "bare":
        return JsonResponse({"event_id": None})
    return HttpResponse(status=404)


def forwarded_client_ip(request) -> str | None:
    """django-axes' ``AXES_CLIENT_IP_CALLABLE`` in the load scenario: the address the trusted proxy forwarded."""
    if request.META.get("REMOTE_ADDR") == settings.TRUSTED_PROXY and request.META.get("HTTP_X_FORWARDED_FOR"):
        return request.META["HTTP_X_FORWARDED_FOR"].rsplit(",", 1)[-1].strip()
    return request.META.get("REMOTE_ADDR")
