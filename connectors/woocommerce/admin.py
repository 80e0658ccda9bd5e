from django.contrib import admin

from .models import WebhookDelivery


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Read-only: the receiver writes these; staff look them up when a store says it delivered."""

    list_display = ("delivery_id", "topic", "webhook_id", "connection", "received_at")
    list_filter = ("topic",)
    search_fields = ("delivery_id",)
    date_hierarchy = "received_at"

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("connection")
        if request.user.is_superuser:
            return qs
        return qs.filter(connection__organization__memberships__user=request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
