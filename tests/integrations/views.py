"""Plain Django views of the integration tests."""

from django.http import JsonResponse

from rail_django.security import EventType, security


def emit(request):
    event = security.emit(EventType.DATA_READ, action="Viewed a page")
    return JsonResponse({"event_id": str(event.event_id)})


def queue_export(request):
    """Queues a Celery task from a request (the task emits its own event in the worker)."""
    from tests.integrations.celery_app import record_export

    result = record_export.delay(int(request.GET.get("report", "7")))
    return JsonResponse({"task_id": result.id})
