"""Products, orders and coupons mirrored from stores: read-mostly (the sync engine writes them)."""

from __future__ import annotations

from django.contrib import admin

from sync.admin import ConnectionSearchFilter, ReadOnlyScopedAdmin

from .models import Coupon, Order, Product


@admin.register(Product)
class ProductAdmin(ReadOnlyScopedAdmin):
    list_display = ["name", "sku", "status", "active", "price", "stock_quantity", "connection", "synced_at"]
    list_select_related = ["connection"]
    list_filter = [ConnectionSearchFilter, "status", "active"]
    search_fields = ["=external_id", "name", "sku", "handle"]
    show_full_result_count = False


@admin.register(Order)
class OrderAdmin(ReadOnlyScopedAdmin):
    list_display = [
        "number",
        "status",
        "payment_status",
        "total",
        "currency",
        "email",
        "connection",
        "upstream_created_at",
    ]
    list_select_related = ["connection"]
    list_filter = [ConnectionSearchFilter, "status", "payment_status"]
    search_fields = ["=external_id", "number", "email", "customer_external_id"]
    show_full_result_count = False


@admin.register(Coupon)
class CouponAdmin(ReadOnlyScopedAdmin):
    list_display = ["code", "discount_type", "amount", "usage_count", "expires_at", "connection", "synced_at"]
    list_select_related = ["connection"]
    list_filter = [ConnectionSearchFilter, "discount_type", "free_shipping"]
    search_fields = ["=external_id", "code"]
    show_full_result_count = False
