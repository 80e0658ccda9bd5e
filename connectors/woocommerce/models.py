"""WooCommerce-only tables."""

from __future__ import annotations

from django.db import models


class WebhookDelivery(models.Model):
    """One accepted webhook delivery, remembered so a re-delivery (same X-WC-Webhook-Delivery-ID) is
    dropped. The unique constraint makes the check race-free; rows are purged after a few days."""

    connection = models.ForeignKey("connectors.Connection", on_delete=models.CASCADE, related_name="+")
    delivery_id = models.CharField(max_length=64)
    topic = models.CharField(max_length=64, blank=True, default="")
    webhook_id = models.CharField(max_length=32, blank=True, default="")
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "delivery_id"], name="uniq_woo_delivery")]

    def __str__(self) -> str:
        return f"{self.topic} #{self.delivery_id}"
