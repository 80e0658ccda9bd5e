"""Customers and loyalty tiers: read-mostly mirrors of upstream data (the sync engine writes them)."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.urls import path

from sync.admin import ConnectionSearchFilter, ReadOnlyScopedAdmin
from sync.records import ERASED

from .models import Customer, LoyaltyTier


@admin.register(Customer)
class CustomerAdmin(ReadOnlyScopedAdmin):
    list_display = [
        "external_id",
        "state",
        "first_name",
        "last_name",
        "email",
        "loyalty_tier",
        "connection",
        "synced_at",
        "deleted_at",
    ]
    list_select_related = ["connection"]
    list_filter = [ConnectionSearchFilter, "loyalty_tier", "is_paying_customer"]

    @admin.display(description="state")
    def state(self, obj: Customer) -> str:
        """Next to the id, where a narrow screen still shows it: a blank row erased on the customer's request
        (a privacy redact; never written by a sync again) must not read as a customer without a name."""
        if obj.sync_hash == ERASED:
            return "erased on request"
        return "deleted" if obj.deleted_at else "live"

    search_fields = ["=external_id", "email", "last_name", "first_name", "customer_code", "phone"]
    show_full_result_count = False


@admin.register(LoyaltyTier)
class LoyaltyTierAdmin(ReadOnlyScopedAdmin):
    list_display = ["name", "code", "rank", "min_points", "connection", "synced_at"]
    list_select_related = ["connection"]
    list_filter = [ConnectionSearchFilter]
    search_fields = ["=external_id", "name", "code"]
    # Above the list: the refresh of each of the user's organizations, with "Refresh now". This app names
    # no connector: the connector that writes the tiers plugs its panel and view in from its own admin
    # module (connectors/mulesoft/admin.py sets these two); without one, the list is plain.
    change_list_template = "admin/customers/loyaltytier/change_list.html"
    refresh_panel = None  # (request) -> rows for the template
    refresh_view = None  # (request, organization_id) -> response

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("refresh/<int:organization_id>/", wrap(self._refresh_view), name="customers_loyaltytier_refresh"),
        ] + super().get_urls()

    def _refresh_view(self, request, organization_id: int):
        # Tiers themselves are read-only; refreshing them is open to the organization's operators.
        if not self.has_view_permission(request) or type(self).refresh_view is None:
            raise PermissionDenied
        return type(self).refresh_view(request, organization_id)

    def changelist_view(self, request, extra_context=None):
        panel = type(self).refresh_panel
        extra_context = {**(extra_context or {}), "loyalty_refresh": panel(request) if panel else []}
        return super().changelist_view(request, extra_context)
