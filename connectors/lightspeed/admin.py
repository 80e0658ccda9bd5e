"""Read-only admin for Lightspeed customer groups (rows are written by syncs only)."""

from django.contrib import admin

from sync.admin import ConnectionSearchFilter
from sync.selectors import scope

from .models import CustomerGroup


@admin.register(CustomerGroup)
class CustomerGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "group_code", "connection", "version", "deleted_at", "synced_at")
    # RelatedOnly: the plain filter would list every organization's connections by name.
    list_filter = [ConnectionSearchFilter]
    search_fields = ("name", "group_code", "external_id")
    readonly_fields = [f.name for f in CustomerGroup._meta.fields]

    def get_queryset(self, request):
        return scope(super().get_queryset(request).select_related("connection"), request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return request.method in ("GET", "HEAD") and super().has_view_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False
