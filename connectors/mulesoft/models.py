"""MuleSoft's own table: per-organization loyalty-refresh bookkeeping (throttle, last outcome)."""

from __future__ import annotations

from django.db import models


class Outcome(models.TextChoices):
    SKIPPED = "skipped", "Not configured (skipped)"
    HTTP_ERROR = "http_error", "HTTP error"
    NETWORK_ERROR = "network_error", "Network error"
    SUCCESS = "success", "Success"


class LoyaltyRefreshState(models.Model):
    """One row per organization. The throttle is a conditional UPDATE on ``last_requested_at`` (a database
    fact shared by every web process), and a 429 pushes ``next_allowed_at`` to the end of MuleSoft's window."""

    organization = models.OneToOneField("sync.Organization", on_delete=models.CASCADE, related_name="+")
    last_requested_at = models.DateTimeField(null=True, blank=True)
    next_allowed_at = models.DateTimeField(null=True, blank=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True, default="")
    last_status_code = models.IntegerField(null=True, blank=True)
    last_message = models.TextField(blank=True, default="")
    tier_count = models.IntegerField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"loyalty refresh of org {self.organization_id}: {self.last_outcome or 'never'}"


class PushDelivery(models.Model):
    """One accepted push, remembered so that a repeat is dropped: by its delivery id when MuleSoft sends one,
    and by the SHA-256 of its signed body always (a replay under a new or missing delivery id). Together with
    the signed timestamp's window this makes any replay a no-op: within the window the row is here; past it
    the timestamp is refused. Rows older than twice the window are purged daily."""

    connection = models.ForeignKey("connectors.Connection", on_delete=models.CASCADE, related_name="+")
    delivery_id = models.CharField(max_length=64, blank=True, default="")
    body_hash = models.CharField(max_length=64)
    signed_at = models.DateTimeField()
    received_at = models.DateTimeField(db_index=True)
    queue_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "delivery_id"], condition=~models.Q(delivery_id=""), name="uniq_mulesoft_push_id"
            ),
            models.UniqueConstraint(fields=["connection", "body_hash"], name="uniq_mulesoft_push_body"),
        ]

    def __str__(self) -> str:
        return f"push {self.delivery_id or self.body_hash[:12]}"
