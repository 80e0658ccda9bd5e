"""Admin: stores with their schedule (reconnect button when needed), pending installs to claim."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from sync.models import Origin
from sync.selectors import organization_ids_for

from . import oauth, privacy, selectors, stores
from .errors import TiendanubeError
from .models import PendingInstall, PrivacyRequest, StoreSchedule, Tier


def _scoped(request, qs, field="organization_id"):
    ids = organization_ids_for(request.user)
    return qs if ids is None else qs.filter(**{f"{field}__in": ids})


class StaffScopedAdmin(admin.ModelAdmin):
    """Any active staff user may use these pages (like the staff API); rows are scoped to their orgs."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_change_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return False


class LateFilter(admin.SimpleListFilter):
    """Stores whose next sync time has passed and that are not queued or running (oldest first)."""

    title = "late"
    parameter_name = "late"

    def lookups(self, request, model_admin):
        return [("yes", "Late (due, not queued or running)")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            from sync.scheduler import due_units

            return due_units(selectors.KIND, queryset=queryset).order_by("next_sync_at", "pk")
        return queryset


class TierFilter(admin.SimpleListFilter):
    """The declared tiers: a plain "tier" filter would ask the database for its DISTINCT values (a scan of every
    store's unit per page view)."""

    title = "tier"
    parameter_name = "tier"

    def lookups(self, request, model_admin):
        return Tier.choices

    def queryset(self, request, queryset):
        return queryset.filter(tier=self.value()) if self.value() else queryset


@admin.register(StoreSchedule)
class StoreScheduleAdmin(StaffScopedAdmin):
    list_display = (
        "connection",
        "organization",
        "tier",
        "state",
        "failures_in_row",
        "next_sync_at",
        "last_success_at",
        "reconnect",
    )
    list_filter = (LateFilter, TierFilter, "state")
    list_per_page = 100
    show_full_result_count = False  # one COUNT less per page at fleet size
    search_fields = ("connection__name", "connection__external_account_id")
    readonly_fields = [f.name for f in StoreSchedule._meta.fields]
    actions = ["sync_now", "reinitialize"]
    change_list_template = "admin/tiendanube/storeschedule/change_list.html"

    def get_queryset(self, request):
        qs = super().get_queryset(request).filter(connection__kind=selectors.KIND, resource="")
        return _scoped(request, qs.select_related("connection", "organization"))

    def changelist_view(self, request, extra_context=None):
        """The capacity per tier above the (paginated) store list: backlog, lag, last hour, keeps up."""
        from sync.policy_selectors import fleet_capacity

        capacity = fleet_capacity(selectors.KIND, units_qs=selectors.store_units(user=request.user))
        return super().changelist_view(request, extra_context={**(extra_context or {}), "capacity": capacity})

    @admin.display(description="Reconnect")
    def reconnect(self, obj):
        if not obj.connection.needs_reauth and obj.connection.is_active:
            return "-"
        url = reverse("tiendanube:connect") + f"?organization={obj.organization_id}"
        return format_html('<a class="button" href="{}">Reconnect</a>', url)

    @admin.action(description="Sync selected stores now")
    def sync_now(self, request, queryset):
        result = stores.stores_enqueue_all(
            connections=[s.connection for s in queryset], origin=Origin.MANUAL, actor=request.user
        )
        self.message_user(request, ", ".join(f"#{k}: {v}" for k, v in result.items()), messages.INFO)

    @admin.action(description="(Re)initialize schedules of selected stores")
    def reinitialize(self, request, queryset):
        n = stores.schedules_initialize(connections=[s.connection for s in queryset])
        self.message_user(request, f"{n} schedule(s) initialized", messages.SUCCESS)


@admin.register(PendingInstall)
class PendingInstallAdmin(StaffScopedAdmin):
    list_display = ("store_id", "scope", "organization", "created_at", "claimed_at", "connection")
    fields = ("store_id", "scope", "organization", "created_at", "claimed_at", "claimed_by", "connection")
    readonly_fields = ("store_id", "scope", "created_at", "claimed_at", "claimed_by", "connection")
    actions = ["claim"]

    def get_queryset(self, request):
        return selectors.pending_install_list(user=request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "organization":
            from sync.selectors import organization_list

            kwargs["queryset"] = organization_list(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.action(description="Claim for the chosen organization")
    def claim(self, request, queryset):
        allowed = organization_ids_for(request.user)
        for pending in queryset.filter(claimed_at__isnull=True):
            if pending.organization is None or (allowed is not None and pending.organization_id not in allowed):
                self.message_user(
                    request, f"store {pending.store_id}: choose one of your organizations first", messages.ERROR
                )
                continue
            try:
                oauth.pending_claim(pending=pending, organization=pending.organization, actor=request.user)
                self.message_user(request, f"store {pending.store_id} claimed; first sync started", messages.SUCCESS)
            except TiendanubeError as exc:
                self.message_user(request, f"store {pending.store_id}: {exc}", messages.ERROR)


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(StaffScopedAdmin):
    list_display = ("event", "store_id", "customer_external_id", "outcome", "created_at", "export")
    list_filter = ("event", "outcome")
    readonly_fields = (
        "event",
        "store_id",
        "connection",
        "customer_external_id",
        "outcome",
        "request",
        "result",
        "created_at",
        "export",
    )

    def get_queryset(self, request):
        return _scoped(request, super().get_queryset(request), "connection__organization_id")

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_view)
        return [path("<int:pk>/export/", export, name="tiendanube_privacyrequest_export"), *super().get_urls()]

    @admin.display(description="Data export")
    def export(self, obj):
        if obj.event != "customers/data_request" or obj.connection_id is None:
            return "-"
        url = reverse("admin:tiendanube_privacyrequest_export", args=[obj.pk])
        return format_html('<a class="button" href="{}">Download JSON</a>', url)

    def export_view(self, request, pk: int):
        """The JSON export of what we hold for the request's customer (scoped like the list)."""
        if not self.has_view_permission(request):
            raise Http404
        obj = get_object_or_404(
            self.get_queryset(request), pk=pk, event="customers/data_request", connection__isnull=False
        )
        body = privacy.privacy_data_export(privacy_request=obj, actor=request.user)
        response = HttpResponse(body, content_type="application/json")
        response["Content-Disposition"] = (
            f'attachment; filename="data-request-{obj.store_id}-{obj.customer_external_id}-{obj.pk}.json"'
        )
        response["Cache-Control"] = "no-store"
        return response
