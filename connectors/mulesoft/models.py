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
