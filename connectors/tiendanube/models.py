"""Tiendanube's own tables: OAuth state, installs waiting to be claimed and privacy requests received by
webhook. Store schedules, tiers, backoff and run slots are the engine's (sync.RunSchedule / sync.RunSlot)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from core import crypto
from sync.models import RunSchedule


class OAuthState(models.Model):
    """One started connect flow. Only a hash of the state is stored; it is single use, bound to the
    session that started it, and expires."""

    state_hash = models.CharField(max_length=64, unique=True)
    session_key = models.CharField(max_length=64)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    organization = models.ForeignKey("sync.Organization", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "OAuth state"


class PendingInstall(models.Model):
    """An install that reached us without our state (e.g. from the app store): a staff user must claim
    it for an organization before it syncs."""

    store_id = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=500, blank=True, default="")
    token_encrypted = models.TextField(blank=True, default="", editable=False)
    organization = models.ForeignKey(
        "sync.Organization",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Choose the organization, save, then use the 'Claim' action.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    connection = models.ForeignKey(
        "connectors.Connection", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Pending store {self.store_id}"

    @property
    def access_token(self) -> str:
        return crypto.decrypt_json(self.token_encrypted).get("access_token", "")

    @access_token.setter
    def access_token(self, value: str) -> None:
        self.token_encrypted = crypto.encrypt_json({"access_token": value}) if value else ""


class Tier(models.TextChoices):
    HIGH = "high", "High (every 5 min)"
    MEDIUM = "medium", "Medium (every 30 min)"
    LOW = "low", "Low (every 6 h)"


class StoreSchedule(RunSchedule):
    """The generic run-policy state (sync.RunSchedule) of Tiendanube stores, for the admin's store list.
    No table of its own: scheduling, tiers, backoff and the cap are the engine's."""

    class Meta:
        proxy = True
        verbose_name = "store schedule"


class PrivacyRequest(models.Model):
    """An LGPD webhook (store/redact, customers/redact, customers/data_request) and what we did."""

    event = models.CharField(max_length=40)
    store_id = models.CharField(max_length=64)
    connection = models.ForeignKey(
        "connectors.Connection", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    customer_external_id = models.CharField(max_length=64, blank=True, default="")
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
