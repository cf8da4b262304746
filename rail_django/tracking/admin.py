"""``AuditHistoryMixin``: a ``ModelAdmin`` whose object "History" page lists the object's audit events."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest
from django.template.response import TemplateResponse
from django.utils.text import capfirst

from rail_django.tracking.history import history_for
from rail_django.tracking.presenter import describe


class AuditHistoryMixin:
    """Mix into a ``ModelAdmin``: ``class OrderAdmin(AuditHistoryMixin, admin.ModelAdmin): ...``.

    The object's "History" page (the link on its change page) then lists
    its audit events, newest first, each with who made the change, when,
    from which request (correlation id), and the diff as a table. Like
    Django's own history page it requires the permission to view the object;
    client IPs and user agents are left out (they stay in the audit admin,
    which needs ``rail_django.view_auditeventmodel``).
    """

    audit_history_template = "rail_django/tracking/object_history.html"
    audit_history_per_page = 50

    def history_view(self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"No {self.model._meta.verbose_name} with the id {object_id!r}.")
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        opts = self.model._meta
        page = Paginator(history_for(obj), self.audit_history_per_page).get_page(request.GET.get("p"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"History: {obj}",
            "subtitle": None,
            "module_name": str(capfirst(opts.verbose_name_plural)),
            "object": obj,
            "opts": opts,
            "entries": [describe(row, str(obj.pk)) for row in page.object_list],
            "page_obj": page,
            "page_range": page.paginator.get_elided_page_range(page.number),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.audit_history_template, context)
