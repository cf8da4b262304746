"""Views the tests call through the real test client."""

import asyncio

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from rail_django.security import EventType, Outcome, Severity, bind_actor, security


def plain(request):
    return HttpResponse("ok")


def emit_view(request):
    event = security.emit(
        EventType.DATA_READ,
        action="Viewed report",
        context={"report": "q3", "api_key": "sk_live_abc", "nested": [{"password": "hunter2"}]},
        resource_type="report",
        resource_id=7,
    )
    return JsonResponse({"event_id": str(event.event_id) if event else None})


@csrf_exempt
def token_login(request):
    """A token API: no Django login signal, so the actor is bound explicitly."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username=request.POST["username"])
    bind_actor(user)
    security.emit(EventType.AUTH_TOKEN_ISSUED, severity=Severity.INFO, action="Token issued")
    return HttpResponse("token")


def failing_view(request):
    security.emit(EventType.SYSTEM_ERROR, outcome=Outcome.ERROR, error="boom with password=hunter2 inside")
    raise RuntimeError("view failed after emitting")


async def async_emit_view(request):
    await asyncio.sleep(0)
    event = security.emit(EventType.UI_ACTION, action="async view")
    return JsonResponse({"event_id": str(event.event_id)})


def alert_view(request):
    security.emit(EventType.SECURITY_ALERT, outcome=Outcome.FAILURE, action="something suspicious")
    return HttpResponse("alerted")
