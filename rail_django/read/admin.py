"""The Django admin for audit events: a read-only list, an event page and the security dashboard.

Audit rows are evidence, so the admin never offers to add, change or delete
one -- not to superusers either. Staff users with
``rail_django.view_auditeventmodel`` may read the list, the event pages and
the dashboard.

The list is built for large tables: no full ``COUNT(*)`` (an estimate from
the PostgreSQL planner, see :mod:`~rail_django.read.paginator`),
filters from a fixed vocabulary, exact-match search on indexed columns, and
sorting only by time. The query string accepts the documented filters only
(:data:`FILTER_PARAMETERS`): Django's admin would otherwise apply any field
lookup it is given (``?user_agent__regex=(`` is a database error,
``?additional_data__contains=x`` a full scan or an error on SQLite).

Registration is done by ``rail_django/admin.py`` through :func:`register_admin`
unless ``AUDIT_ADMIN_ENABLED = False``.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import DateFieldListFilter
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from rail_django.capture.context import describe_user_agent
from rail_django.read import filters
from rail_django.read.dashboard import LOGIN_FAILURE
from rail_django.read.lockout_action import can_reset_lockouts, reset_lockouts
from rail_django.read.paginator import EstimatedCountPaginator
from rail_django.read.views import changelist_url, dashboard_view

MAX_SEARCH_TERM = 255

#: The query-string parameters of the list's filters (docs/admin.md); any other lookup is refused.
FILTER_PARAMETERS = frozenset({
    "window", "event_type", "severity", "outcome", "timestamp__gte", "timestamp__lt",
    "client_ip", "correlation_id", "username", "attempted",
})


class AuditChangeList(ChangeList):
    """Django's change list, refusing a lookup its admin does not allow with the "invalid filter" redirect.

    Django itself answers a disallowed lookup with a 400 page
    (``DisallowedModelAdminLookup``); a mistyped or crafted link deserves the
    same treatment as a malformed filter value instead.
    """

    def get_filters(self, request: HttpRequest) -> Any:
        for key, values in self.get_filters_params().items():
            if not all(self.model_admin.lookup_allowed(key, value, request) for value in values):
                raise IncorrectLookupParameters(f"There is no filter named {key[:40]!r}.")
        return super().get_filters(request)


class AuditEventAdmin(admin.ModelAdmin):
    """Read-only admin for the audit model."""

    list_display = ("time", "type_column", "severity_column", "outcome_column", "actor", "ip_column", "path")
    list_display_links = ("time",)
    sortable_by = ("time",)
    list_filter = (
        filters.WindowFilter,
        filters.EventTypeFilter,
        filters.SeverityFilter,
        filters.OutcomeFilter,
        ("timestamp", DateFieldListFilter),
        filters.ClientIPFilter,
        filters.CorrelationIdFilter,
        filters.UsernameFilter,
        filters.AttemptedUsernameFilter,
    )
    search_fields = ("username", "client_ip", "correlation_id")
    search_help_text = "Exact username, attempted username, IP address or correlation id."
    ordering = ("-timestamp",)
    list_per_page = 50
    list_max_show_all = 200
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    actions = [reset_lockouts]  # issue 14: only superusers with AUDIT_LOCKOUT_ENABLED see it (no bulk delete)
    preserve_filters = True
    change_list_template = "rail_django/admin/change_list.html"
    change_form_template = "rail_django/admin/change_form.html"
    fieldsets = (
        ("Event", {"fields": ("event_id", "event_type", "severity", "outcome_column", "timestamp", "action", "error_message")}),
        ("Actor", {"fields": ("user_id", "username", "attempted_username", "session_id")}),
        ("Request", {"fields": ("client_ip", "remote_addr", "request_method", "request_path", "user_agent", "client_software", "correlation_id")}),
        ("Related events", {"fields": ("related_events",)}),
        ("Additional data", {"fields": ("additional_data_pretty",)}),
    )
    readonly_fields = (
        "event_id", "event_type", "severity", "outcome_column", "timestamp", "action", "error_message",
        "user_id", "username", "attempted_username", "session_id", "client_ip", "remote_addr",
        "request_method", "request_path", "user_agent", "client_software", "correlation_id", "related_events",
        "additional_data_pretty",
    )

    def has_reset_lockout_permission(self, request: HttpRequest) -> bool:
        return can_reset_lockouts(request)

    # -- read-only for everyone -------------------------------------------------------
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    # -- filters: the documented ones only ---------------------------------------------
    def lookup_allowed(self, lookup: str, value: Any, request: HttpRequest | None = None) -> bool:
        return lookup in FILTER_PARAMETERS

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return AuditChangeList

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        try:
            return super().get_changelist_instance(request)
        except IncorrectLookupParameters as exc:
            # Django redirects to the unfiltered list (?e=1); say why there.
            reason = Truncator(str(exc)).chars(160)
            self.message_user(request, f"Invalid filter ({reason}): the list shows every event.", messages.WARNING, fail_silently=True)
            raise

    # -- search: exact matches on indexed columns -------------------------------------
    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        if len(term) > MAX_SEARCH_TERM:
            return queryset.none(), False
        try:
            return queryset.filter(client_ip=str(ipaddress.ip_address(term))), False
        except ValueError:
            pass
        attempted = Q(event_type=LOGIN_FAILURE, **{filters.ATTEMPTED_USERNAME: term})
        return queryset.filter(Q(username=term) | Q(correlation_id=term) | attempted), False

    # -- list columns -----------------------------------------------------------------
    @admin.display(description="time", ordering="timestamp")
    def time(self, obj: Any) -> str:
        moment = timezone.localtime(obj.timestamp) if timezone.is_aware(obj.timestamp) else obj.timestamp
        return format_html('<span class="rail-nowrap">{}</span>', moment.strftime("%Y-%m-%d %H:%M:%S"))

    @admin.display(description="type")
    def type_column(self, obj: Any) -> str:
        return obj.event_type

    @admin.display(description="severity")
    def severity_column(self, obj: Any) -> str:
        return format_html('<span class="rail-sev rail-sev-{}">{}</span>', obj.severity, obj.severity)

    @admin.display(description="outcome")
    def outcome_column(self, obj: Any) -> str:
        outcome = obj.outcome
        return format_html('<span class="rail-outcome rail-outcome-{}">{}</span>', outcome, outcome)

    @admin.display(description="user")
    def actor(self, obj: Any) -> str:
        if obj.username or obj.user_id:
            return obj.username or f"#{obj.user_id}"
        attempted = self.attempted_username(obj)
        return format_html('<span class="rail-nowrap"><em>tried</em> {}</span>', attempted) if attempted else "-"

    @admin.display(description="IP")
    def ip_column(self, obj: Any) -> str:
        if not obj.client_ip:
            return "-"
        return format_html('<a href="{}">{}</a>', changelist_url(self, client_ip=obj.client_ip), obj.client_ip)

    @admin.display(description="path")
    def path(self, obj: Any) -> str:
        if not obj.request_path:
            return "-"
        return f"{obj.request_method} {Truncator(obj.request_path).chars(60)}".strip()

    # -- event page -------------------------------------------------------------------
    @staticmethod
    def _data(obj: Any) -> dict[str, Any]:
        data = obj.additional_data
        return data if isinstance(data, dict) else {}

    @admin.display(description="action")
    def action(self, obj: Any) -> str:
        return self._data(obj).get("action") or "-"

    @admin.display(description="remote address")
    def remote_addr(self, obj: Any) -> str:
        return self._data(obj).get("remote_addr") or "-"

    @admin.display(description="browser, OS, device")
    def client_software(self, obj: Any) -> str:
        # Parsed here, on the one page that shows it, never on the request path.
        if not obj.user_agent:
            return "-"
        client = describe_user_agent(obj.user_agent)
        kind = "bot" if client["is_bot"] else "mobile" if client["is_mobile"] else "desktop or other"
        return f"{client['browser']} · {client['os']} · {client['device']} ({kind})"

    @admin.display(description="attempted username")
    def attempted_username(self, obj: Any) -> str:
        context = self._data(obj).get("context")
        value = context.get("username_attempted") if isinstance(context, dict) else None
        return str(value) if value else ""

    @admin.display(description="events")
    def related_events(self, obj: Any) -> str:
        links = []
        if obj.correlation_id:
            links.append((changelist_url(self, correlation_id=obj.correlation_id), "Same correlation id", obj.correlation_id))
        if obj.client_ip:
            links.append((changelist_url(self, client_ip=obj.client_ip), "Same IP address", obj.client_ip))
        if obj.username:
            links.append((changelist_url(self, username=obj.username), "Same user", obj.username))
        attempted = self.attempted_username(obj)
        if attempted:
            url = changelist_url(self, event_type=LOGIN_FAILURE, attempted=attempted)
            links.append((url, "Failed logins for the same username", attempted))
        if not links:
            return "-"
        items = format_html_join("", '<li><a href="{}">{}</a>: <code>{}</code></li>', links)
        return format_html('<ul class="rail-related">{}</ul>', items)

    @admin.display(description="additional_data")
    def additional_data_pretty(self, obj: Any) -> str:
        text = json.dumps(obj.additional_data, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        return format_html('<pre class="rail-json">{}</pre>', text)

    # -- the dashboard ----------------------------------------------------------------
    def get_urls(self) -> list:
        opts = self.model._meta
        dashboard = path(
            "dashboard/",
            self.admin_site.admin_view(self.dashboard_view),
            name=f"{opts.app_label}_{opts.model_name}_dashboard",
        )
        return [dashboard, *super().get_urls()]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        return dashboard_view(request, self)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        opts = self.model._meta
        extra_context = {
            **(extra_context or {}),
            "dashboard_url": reverse(
                f"admin:{opts.app_label}_{opts.model_name}_dashboard", current_app=self.admin_site.name
            ),
        }
        return super().changelist_view(request, extra_context)


def register_admin(site: admin.AdminSite | None = None) -> bool:
    """Register the audit model on ``site`` (default ``admin.site``) unless ``AUDIT_ADMIN_ENABLED`` is False.

    Returns whether the model is registered. Call it yourself for a custom
    ``AdminSite``; ``rail_django/admin.py`` calls it for the default site.
    """
    from rail_django.conf import read_setting
    from rail_django.models import get_audit_event_model

    site = site if site is not None else admin.site
    if not read_setting("AUDIT_ADMIN_ENABLED"):
        return False
    model = get_audit_event_model()
    if not site.is_registered(model):
        site.register(model, AuditEventAdmin)
    return True
