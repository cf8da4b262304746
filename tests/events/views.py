"""Views of the no-code event tests."""

from django.contrib.auth.decorators import permission_required
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.views import View

from rail_django.security import EventType, security


def plain(request):
    return HttpResponse("ok")


def denied_function(request):
    raise PermissionDenied("Only auditors may see this")


class DeniedClassView(PermissionRequiredMixin, View):
    permission_required = "auth.delete_group"
    raise_exception = True

    def get(self, request):
        return HttpResponse("allowed")


def denied_after_emit(request):
    security.emit(EventType.DATA_READ, action="looked first")
    raise PermissionDenied


@permission_required("auth.view_permission", raise_exception=True)
def needs_permission(request):
    return HttpResponse("allowed")


def csrf_form(request):
    """A form page (GET) that accepts its own POST only with a valid CSRF token."""
    if request.method == "POST":
        return HttpResponse(f"saved {request.POST.get('note', '')}")
    from django.middleware.csrf import get_token

    return HttpResponse(
        f'<form method="post" action="/form/"><input type="hidden" name="csrfmiddlewaretoken" value="{get_token(request)}">'
        '<input id="note" name="note"><button id="save" type="submit">Save</button></form>'
    )
