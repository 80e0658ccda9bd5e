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
    """An LGPD webhook (store/redact, customers/redact, customers/data_request) and what we did.

    ``request`` keeps only the identifiers of the body (data request id, order ids), never the customer's
    email, phone or document: the data export of a data request is built when staff download it."""

    class Outcome(models.TextChoices):
        APPLIED = "applied", "Applied"
        RECORDED = "recorded", "Recorded (export available)"
        REFUSED = "refused", "Refused"

    event = models.CharField(max_length=40)
    store_id = models.CharField(max_length=64)
    connection = models.ForeignKey(
        "connectors.Connection", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    customer_external_id = models.CharField(max_length=64, blank=True, default="")
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.APPLIED)
    request = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


class WebhookReceipt(models.Model):
    """A verified Tiendanube delivery, remembered for the dedupe window. Tiendanube sends no delivery id
    and its bodies carry no timestamp, so the SHA-256 of the signed body (which holds store, event and
    id) is the key: the same delivery twice within the window is acted on once. Purged daily."""

    body_hash = models.CharField(max_length=64, unique=True)
    store_id = models.CharField(max_length=64)
    event = models.CharField(max_length=40)
    record_id = models.CharField(max_length=64, blank=True, default="")
    received_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.event} {self.record_id} (store {self.store_id})"
