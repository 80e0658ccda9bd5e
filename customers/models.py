from __future__ import annotations

from django.db import models

from sync.records import SyncedRecord


class Customer(SyncedRecord):
    # Names and free text have no natural bound upstream: TextField keeps them whole (issue 16: no silent
    # truncation). Identifiers and codes keep a bound; a longer one fails its line naming the field.
    first_name = models.TextField(blank=True, default="")
    last_name = models.TextField(blank=True, default="")
    email = models.EmailField(max_length=254, blank=True, default="", db_index=True)
    username = models.CharField(max_length=255, blank=True, default="")
    phone = models.CharField(max_length=64, blank=True, default="")
    company = models.TextField(blank=True, default="")
    billing = models.JSONField(default=dict, blank=True)
    shipping = models.JSONField(default=dict, blank=True)
    is_paying_customer = models.BooleanField(default=False)
    customer_code = models.CharField(max_length=255, blank=True, default="")
    customer_group_id = models.CharField(max_length=255, blank=True, default="")
    loyalty_balance = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    loyalty_tier = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        constraints = [SyncedRecord.binding_constraint("uniq_customer_binding")]
        indexes = [models.Index(fields=["organization", "last_name", "first_name"])]

    def __str__(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        if self.email:
            return f"{name} <{self.email}>".strip()
        # A customer erased on request (or one without name and email) is still a row staff can tell apart.
        return name or f"customer {self.external_id}"


class LoyaltyTier(SyncedRecord):
    """A loyalty tier as MuleSoft serves it, stored for offline use."""

    code = models.CharField(max_length=64, blank=True, default="")
    name = models.TextField()
    rank = models.IntegerField(default=0)
    min_points = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    benefits = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["rank", "name"]
        constraints = [SyncedRecord.binding_constraint("uniq_loyaltytier_binding")]

    def __str__(self) -> str:
        return self.name
