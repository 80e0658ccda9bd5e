"""The operations console: engine models, the sync dashboard, queue actions.

Organization scoping (see docs/admin.md): a staff user who is not a superuser sees and acts on the rows of
the organizations they are a member of, and nothing else - in changelists, change pages, actions, filters,
autocomplete and foreign-key dropdowns. Access is granted by membership (``has_*_permission`` below), not by
Django model permissions: being staff + member of an organization is what makes someone its operator.
"""

from __future__ import annotations

import logging

from django.contrib import admin
from django.contrib.admin import RelatedOnlyFieldListFilter
from django.core.exceptions import PermissionDenied
from django.db.models import F, Q
from django.http import Http404, HttpRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from . import admin_views, selectors
from .lookups import ILikeContains
from .models import (
    Membership,
    Organization,
    SyncActivity,
    SyncQueue,
    SyncQueueLine,
    SyncStatus,
    SystemSetting,
)
from .progress import run_progress
from .registry import connection_model
from .templatetags.sh_console import sh_time

log = logging.getLogger(__name__)


# --- Scoping -----------------------------------------------------------------------------------------------
def org_ids(request: HttpRequest) -> list[int] | None:
    """The caller's organization ids (None = all, for superusers), computed once per request."""
    if not hasattr(request, "_synchub_org_ids"):
        request._synchub_org_ids = selectors.organization_ids_for(request.user)
    return request._synchub_org_ids


def is_operator(request: HttpRequest) -> bool:
    user = request.user
    if not (user.is_active and user.is_staff):
        return False
    ids = org_ids(request)
    return ids is None or bool(ids)


class OrgScopedAdmin(admin.ModelAdmin):
    """Base for every admin that shows tenant rows. ``org_field`` is the lookup holding the organization id."""

    org_field = "organization_id"
    operator_can_add = False
    operator_can_change = False
    operator_can_delete = False

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        ids = org_ids(request)
        return qs if ids is None else qs.filter(**{f"{self.org_field}__in": ids})

    # Membership-based permissions for non-superusers (superusers keep Django's defaults: everything).
    def has_module_permission(self, request):
        return request.user.is_superuser or is_operator(request)

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser or is_operator(request)

    def has_add_permission(self, request, *args):
        return (request.user.is_superuser or is_operator(request)) and self._allows("add", request)

    def has_change_permission(self, request, obj=None):
        return (request.user.is_superuser or is_operator(request)) and self._allows("change", request)

    def has_delete_permission(self, request, obj=None):
        return (request.user.is_superuser or is_operator(request)) and self._allows("delete", request)

    def _allows(self, what: str, request) -> bool:
        return getattr(self, f"operator_can_{what}")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        """FK dropdowns (and raw-id lookups via get_queryset of the target admin) list only own rows."""
        ids = org_ids(request)
        if ids is not None:
            Connection = connection_model()
            related = db_field.related_model
            if related is Organization:
                kwargs["queryset"] = Organization.objects.filter(id__in=ids)
            elif related is Connection:
                kwargs["queryset"] = Connection.objects.filter(organization_id__in=ids)
            elif related is SyncQueue:
                kwargs["queryset"] = SyncQueue.objects.filter(organization_id__in=ids)
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if ids is not None and db_field.related_model is Organization and field is not None:
            field.required = True  # only superusers manage global (organization-less) rows
        return field


class ReadOnlyScopedAdmin(OrgScopedAdmin):
    """Rows the engine writes; people only look at them."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- A connection filter that never lists every connection (issue 21: 10,000 stores) -----------------------
class ConnectionSearchFilter(admin.SimpleListFilter):
    """Filter by connection with a search box (``conn``: an id, a store id, or part of a name) instead of one
    link per connection. Costs at most one small query (the chosen connection's name)."""

    title = "connection"
    parameter_name = "conn"
    template = "admin/sync/filter_connection_search.html"
    field = "connection"

    def lookups(self, request, model_admin):
        # Other active GET parameters, carried as hidden inputs by the search form.
        self.hidden = [(k, v) for k, v in request.GET.items() if k not in (self.parameter_name, "p")]
        return ()

    def has_output(self) -> bool:
        return True

    def queryset(self, request, queryset):
        """``connection_id IN (the matching connections)``: the few matching ids are found first, then the rows
        by their connection index. Joining every row to its connection to test the name scanned the whole
        table (30,000 queues: ~110 ms for a page and its count)."""
        value = self.value()
        if not value:
            return queryset
        value = value.strip()[:100]
        q = Q(ILikeContains(F("name"), value)) | Q(external_account_id=value)
        if value.isdigit() and len(value) < 12:
            q |= Q(pk=int(value))
        matching = connection_model().objects.filter(q).values("pk")
        return queryset.filter(**{f"{self.field}_id__in": matching})

    def choices(self, changelist):
        yield {
            "selected": not self.value(),
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "All",
        }


class DeclaredChoicesFilter(admin.SimpleListFilter):
    """A filter whose choices come from the connector declarations, not from the table: Django's filter on a
    plain CharField runs SELECT DISTINCT over every row on each page view."""

    lookup = ""

    def choice_values(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def lookups(self, request, model_admin):
        return [(v, v) for v in self.choice_values()]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.lookup: self.value()}) if self.value() else queryset


class ResourceFilter(DeclaredChoicesFilter):
    title = "resource"
    parameter_name = "resource"
    lookup = "resource"

    def choice_values(self) -> list[str]:
        from .registry import KINDS, get_connector

        names = set()
        for kind in KINDS:
            try:
                names.update(get_connector(kind).resources)
            except Exception:  # one broken declaration must not take the queue list down
                log.exception("connector %s could not be loaded for the resource filter", kind)
        return sorted(names)


class KindFilter(DeclaredChoicesFilter):
    title = "kind"
    parameter_name = "kind"
    lookup = "connection__kind"

    def choice_values(self) -> list[str]:
        from .registry import KINDS

        return sorted(KINDS)


# --- Organizations and settings ---------------------------------------------------------------------------
class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]

    def has_add_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Organization)
class OrganizationAdmin(OrgScopedAdmin):
    org_field = "id"
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def _allows(self, what, request):
        return request.user.is_superuser  # tenants are created by superusers only


@admin.register(SystemSetting)
class SystemSettingAdmin(OrgScopedAdmin):
    list_display = ["key", "value", "organization", "description", "updated_at"]
    list_select_related = ["organization"]
    list_filter = [("organization", RelatedOnlyFieldListFilter)]
    search_fields = ["key", "description"]
    operator_can_add = operator_can_change = operator_can_delete = True


# --- Status, activity -------------------------------------------------------------------------------------
@admin.register(SyncStatus)
class SyncStatusAdmin(ReadOnlyScopedAdmin):
    list_display = [
        "connection",
        "resource",
        "state",
        "records_synced",
        "records_failed",
        "last_success_at",
        "finished_at",
        "short_error",
    ]
    list_select_related = ["connection", "organization"]
    list_filter = ["state", KindFilter, ConnectionSearchFilter, ResourceFilter]
    search_fields = ["resource", "connection__name", "last_error"]

    @admin.display(description="last error")
    def short_error(self, obj: SyncStatus) -> str:
        return (obj.last_error or "")[:120]


@admin.register(SyncActivity)
class SyncActivityAdmin(ReadOnlyScopedAdmin):
    list_display = ["created_at", "event", "level", "actor_label", "connection", "queue_link", "message"]
    list_select_related = ["connection", "queue"]
    list_filter = ["level", "event", ConnectionSearchFilter]
    search_fields = ["event", "message", "actor_label"]
    date_hierarchy = None

    @admin.display(description="queue")
    def queue_link(self, obj: SyncActivity) -> str:
        if obj.queue_id is None:
            return "-"
        return format_html(
            '<a href="{}">#{}</a>', reverse("admin:sync_syncqueue_change", args=[obj.queue_id]), obj.queue_id
        )


# --- Queues ------------------------------------------------------------------------------------------------
def _bulk_queue_action(name: str):
    action = admin_views.QUEUE_ACTIONS[name]

    def run(modeladmin, request, queryset):
        queues = list(queryset.select_related("connection"))
        if request.POST.get("post") == "yes":  # confirmed on the intermediate page
            admin_views.queue_actions_apply(request, action, queues)
            return None
        return admin_views.queue_action_confirm(request, modeladmin.admin_site, modeladmin, action, queues, bulk=True)

    run.__name__ = f"queues_{name}"
    return admin.action(description=f"{action.label} (selected queues)")(run)


class ActionRequiredFilter(admin.SimpleListFilter):
    title = "action required"
    parameter_name = "action_required"

    def lookups(self, request, model_admin):
        return [("1", "Yes"), ("0", "No")]

    def queryset(self, request, queryset):
        if self.value() in ("0", "1"):
            return queryset.filter(action_required=self.value() == "1")
        return queryset


@admin.register(SyncQueue)
class SyncQueueAdmin(OrgScopedAdmin):
    list_display = [
        "queue_id",
        "connection",
        "resource",
        "state_badge",
        "progress",
        "origin",
        "duration",
        "action_marker",
        "created",
    ]
    list_display_links = ["queue_id"]
    list_select_related = ["connection"]
    list_filter = ["state", KindFilter, ConnectionSearchFilter, ResourceFilter, "origin", ActionRequiredFilter]
    search_fields = ["idempotency_key"]  # plus a line's external id: see get_search_results
    search_help_text = "Idempotency key (contains) or a line's exact external id."
    actions = [
        _bulk_queue_action("retry"),
        _bulk_queue_action("force_done"),
        _bulk_queue_action("cancel"),
        _bulk_queue_action("apply_deletions"),
    ]
    list_per_page = 100
    show_full_result_count = False
    operator_can_change = True  # "change" = run actions; the queue page itself is not a form

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:queue_id>/progress/", wrap(admin_views.progress_json), name="sync_syncqueue_progress"),
            path("<int:queue_id>/action/<str:name>/", wrap(self._action_view), name="sync_syncqueue_action"),
        ] + super().get_urls()

    def _action_view(self, request, queue_id: int, name: str):
        if not self.has_change_permission(request):
            raise PermissionDenied
        return admin_views.queue_action_view(request, self.admin_site, self, queue_id, name)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        line_queues = SyncQueueLine.objects.filter(external_id=term).values("queue_id")
        return queryset.filter(Q(idempotency_key__icontains=term) | Q(pk__in=line_queues)), False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        try:
            queue = (
                self.get_queryset(request)
                .select_related("connection", "organization")
                .filter(pk=int(object_id))
                .first()
            )
        except (TypeError, ValueError):
            queue = None
        if queue is None:
            raise Http404("no such queue")
        if not self.has_view_permission(request, queue):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            **admin_views.queue_detail_context(request, queue),
            "opts": self.model._meta,
            "title": f"Queue #{queue.pk}: {queue.connection.name} / {queue.resource}",
            "has_change_permission": self.has_change_permission(request, queue),
        }
        return TemplateResponse(request, "admin/sync/syncqueue/detail.html", context)

    @admin.display(description="queue", ordering="id")
    def queue_id(self, obj: SyncQueue) -> str:
        return f"#{obj.pk}"

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: SyncQueue) -> str:
        return format_html('<span class="sh-badge sh-{}">{}</span>', obj.state, obj.get_state_display())

    @admin.display(description="progress")
    def progress(self, obj: SyncQueue) -> str:
        return admin_views.progress_bar_html(obj, live=True, name=f"{obj.connection.name} / {obj.resource}")

    @admin.display(description="active / waiting")
    def duration(self, obj: SyncQueue) -> str:
        p = run_progress(obj)
        return format_html(
            '<span title="worker time {}; waiting for a worker, a retry or a person {}">{} <span class="sh-muted">/ {}</span></span>',
            p["active"],
            p["waiting"],
            p["active"],
            p["waiting"],
        )

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: SyncQueue) -> str:
        return sh_time(obj.created_at)

    @admin.display(description="action", ordering="action_required")
    def action_marker(self, obj: SyncQueue) -> str:
        if obj.action_required:
            return format_html(
                '<span class="sh-action-required" title="{}">&#9888; <span class="sh-sr">action </span>required</span>',
                (obj.last_error or "")[:300],
            )
        return ""

    def has_add_permission(self, request, *args):
        return False  # runs start from the dashboard, the API, schedules or webhooks

    def has_delete_permission(self, request, obj=None):
        return False  # finished queues are purged by retention (sync.services.queues_purge)


# --- The dashboard, mounted on the admin site itself (/admin/sync-dashboard/) -----------------------------
def _install_dashboard_urls(site: admin.AdminSite) -> None:
    original = site.get_urls

    def get_urls():
        urls = [
            path("sync-dashboard/", site.admin_view(lambda r: admin_views.dashboard(r, site)), name="sync_dashboard"),
            path("sync-dashboard/sync/", site.admin_view(admin_views.dashboard_sync), name="sync_dashboard_sync"),
            path("sync-dashboard/state/", site.admin_view(admin_views.dashboard_state), name="sync_dashboard_state"),
        ]
        return urls + original()

    site.get_urls = get_urls


_install_dashboard_urls(admin.site)
