"""The security dashboard page and the links between admin pages.

Served inside the admin by :class:`~rail_django.read.admin.AuditEventAdmin`,
which imports this module; nothing here imports the admin back (the model
admin is passed in as an argument).
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin import ModelAdmin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode

from rail_django.read.dashboard import ALERT, LOGIN_FAILURE, LOGIN_SUCCESS, build_dashboard, get_window


def changelist_url(model_admin: ModelAdmin, **params: Any) -> str:
    """The admin list of audit events, filtered by ``params`` (filter name -> value)."""
    opts = model_admin.model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist", current_app=model_admin.admin_site.name)
    query = {key: value for key, value in params.items() if value not in (None, "")}
    return f"{url}?{urlencode(query)}" if query else url


def dashboard_view(request: HttpRequest, model_admin: ModelAdmin) -> HttpResponse:
    """Render the dashboard for ``?window=1h|24h|7d`` (default 24h) to staff who may view audit events."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    window = get_window(request.GET.get("window"))
    data = build_dashboard(model_admin.model, window)

    def link(**params: Any) -> str:
        return changelist_url(model_admin, window=window.key, **params)

    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Security dashboard",
        "subtitle": window.label,
        "opts": model_admin.model._meta,
        "dashboard": data,
        "chart": data.chart,
        "window_links": [(w, w.key == window.key) for w in data.windows],
        "links": {
            "all": link(),
            "failed": link(outcome="failure"),
            "login_success": link(event_type=LOGIN_SUCCESS),
            "login_failure": link(event_type=LOGIN_FAILURE),
            "alerts": link(event_type=ALERT),
        },
        "severity_rows": [(name, n, link(severity=name)) for name, n in data.by_severity],
        "ip_rows": [(ip, n, link(event_type=LOGIN_FAILURE, client_ip=ip)) for ip, n in data.top_failure_ips],
        "username_rows": [
            (name, n, link(event_type=LOGIN_FAILURE, attempted=name)) for name, n in data.top_targeted_usernames
        ],
        "changelist_url": changelist_url(model_admin),
        "tick_format": "D H:i" if window.count * window.bucket_minutes > 24 * 60 else "H:i",
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "rail_django/admin/dashboard.html", context)
