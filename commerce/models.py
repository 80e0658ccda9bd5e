from __future__ import annotations

from django.db import models

from sync.records import SyncedRecord


class Product(SyncedRecord):
    name = models.TextField(blank=True, default="")  # free text: kept whole
    sku = models.CharField(max_length=255, blank=True, default="", db_index=True)
    handle = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(max_length=32, blank=True, default="")
    active = models.BooleanField(default=True)
    price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    regular_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    sale_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    stock_quantity = models.IntegerField(null=True, blank=True)
    variant_parent_id = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["name", "id"]
        constraints = [SyncedRecord.binding_constraint("uniq_product_binding")]

    def __str__(self) -> str:
        return self.name or self.external_id


class Order(SyncedRecord):
    number = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=32, blank=True, default="")
    payment_status = models.CharField(max_length=32, blank=True, default="")
    currency = models.CharField(max_length=8, blank=True, default="")
    total = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    customer_external_id = models.CharField(max_length=255, blank=True, default="")
    email = models.EmailField(max_length=254, blank=True, default="")
    line_items = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-upstream_created_at", "-id"]
        constraints = [SyncedRecord.binding_constraint("uniq_order_binding")]

    def __str__(self) -> str:
        return f"Order {self.number or self.external_id}"


class Coupon(SyncedRecord):
    """A discount code of a store. Amounts are None where the upstream means "no limit"."""

    code = models.CharField(max_length=255, blank=True, default="", db_index=True)
    discount_type = models.CharField(max_length=32, blank=True, default="")
    amount = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    description = models.TextField(blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)
    usage_count = models.IntegerField(default=0)
    usage_limit = models.IntegerField(null=True, blank=True)
    usage_limit_per_user = models.IntegerField(null=True, blank=True)
    individual_use = models.BooleanField(default=False)
    free_shipping = models.BooleanField(default=False)
    exclude_sale_items = models.BooleanField(default=False)
    minimum_amount = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    maximum_amount = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)

    class Meta:
        ordering = ["code", "id"]
        constraints = [SyncedRecord.binding_constraint("uniq_coupon_binding")]

    def __str__(self) -> str:
        return self.code or self.external_id
