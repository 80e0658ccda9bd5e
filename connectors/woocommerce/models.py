"""WooCommerce-only tables."""

from __future__ import annotations

from django.db import models


class WebhookDelivery(models.Model):
    """One signed webhook delivery, remembered for the dedupe window so that a re-delivery is dropped.

    Only the body is signed: the ``X-WC-Webhook-Delivery-ID`` header can be changed or left out by whoever
    replays a captured body, so a delivery is a duplicate when either its delivery id or the SHA-256 of its
    body (per resource: customer 25 and product 25 are both deleted as ``{"id": 25}``) was seen within the
    window. The unique constraints make the check race-free; rows older than the window are purged daily
    (and ignored before that). When a newer body for the same record is accepted, the older bodies' hashes
    are released (``body_hash=""``), so that record's next identical delete (trash, restore, trash again)
    is not mistaken for a replay; a replay of a released body is only a harmless re-fetch."""

    connection = models.ForeignKey("connectors.Connection", on_delete=models.CASCADE, related_name="+")
    delivery_id = models.CharField(max_length=64, blank=True, default="")
    body_hash = models.CharField(max_length=64, blank=True, default="")
    topic = models.CharField(max_length=64, blank=True, default="")
    webhook_id = models.CharField(max_length=32, blank=True, default="")
    resource = models.CharField(max_length=32, blank=True, default="")
    record_id = models.CharField(max_length=32, blank=True, default="")
    outcome = models.CharField(max_length=16, blank=True, default="")
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "delivery_id"], condition=~models.Q(delivery_id=""), name="uniq_woo_delivery"
            ),
            models.UniqueConstraint(
                fields=["connection", "resource", "body_hash"],
                condition=~models.Q(body_hash=""),
                name="uniq_woo_delivery_body",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.topic} #{self.delivery_id or self.body_hash[:12]}"
