"""Customers and loyalty tiers: read-mostly mirrors of upstream data (the sync engine writes them)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin import RelatedOnlyFieldListFilter

from sync.admin import ReadOnlyScopedAdmin

from .models import Customer, LoyaltyTier


@admin.register(Customer)
class CustomerAdmin(ReadOnlyScopedAdmin):
    list_display = [
        "external_id",
        "first_name",
        "last_name",
        "email",
        "loyalty_tier",
        "connection",
        "synced_at",
        "deleted_at",
    ]
    list_select_related = ["connection"]
    list_filter = [("connection", RelatedOnlyFieldListFilter), "loyalty_tier", "is_paying_customer"]
    search_fields = ["=external_id", "email", "last_name", "first_name", "customer_code", "phone"]
    show_full_result_count = False


@admin.register(LoyaltyTier)
class LoyaltyTierAdmin(ReadOnlyScopedAdmin):
    list_display = ["name", "code", "rank", "min_points", "connection", "synced_at"]
    list_select_related = ["connection"]
    list_filter = [("connection", RelatedOnlyFieldListFilter)]
    search_fields = ["=external_id", "name", "code"]
