"""Alerts for every connection: per-connection rules, incidents (one open row per problem) and the
notifications each incident sent. Vendor-free: it reads the engine's tables (RunSchedule, SyncStatus)."""

from __future__ import annotations

from django.db import models

from core import crypto
from core.redaction import register_secret


class AlertRule(models.Model):
    """Per-connection alert configuration. No row = the defaults (enabled, email on, the policy's numbers)."""

    organization = models.ForeignKey("sync.Organization", on_delete=models.CASCADE, related_name="+")
    connection = models.OneToOneField("connectors.Connection", on_delete=models.CASCADE, related_name="alert_rule")
    enabled = models.BooleanField(default=True, help_text="Off: no new incidents for this connection")
    email_enabled = models.BooleanField(default=True, help_text="Email the organization's admins")
    failure_streak = models.PositiveIntegerField(
        null=True, blank=True, help_text="Failed runs in a row that open an incident (empty: the run policy's)"
    )
    freshness = models.DurationField(
        null=True,
        blank=True,
        help_text="No success for this long opens an incident (empty: the policy's, else 3x the schedule interval)",
    )
    # A Slack-compatible incoming-webhook URL carries its token in the path: stored like credentials
    # (MultiFernet, FIELD_ENCRYPTION_KEYS, rotated by rotate_field_keys), never shown back.
    webhook_url_encrypted = models.TextField(blank=True, default="", editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization_id", "connection_id"]

    def __str__(self) -> str:
        return f"alert rule of connection {self.connection_id}"

    @property
    def webhook_url(self) -> str:
        url = crypto.decrypt_json(self.webhook_url_encrypted).get("url", "")
        register_secret(url)
        return url

    @webhook_url.setter
    def webhook_url(self, url: str) -> None:
        url = (url or "").strip()
        register_secret(url)
        self.webhook_url_encrypted = crypto.encrypt_json({"url": url}) if url else ""

    @property
    def has_webhook(self) -> bool:
        return bool(self.webhook_url_encrypted)


class IncidentKind(models.TextChoices):
    FAILURE_STREAK = "failure_streak", "Failure streak"
    STALE = "stale", "Stale (no recent success)"


class IncidentState(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class Incident(models.Model):
    """One problem of one (connection, resource), from the moment it is seen until it clears. At most one
    open row per (connection, resource, kind) - a partial unique index - so however often it is evaluated
    (every run end, every schedule tick, several workers at once), one incident sends one alert."""

    organization = models.ForeignKey("sync.Organization", on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey("connectors.Connection", on_delete=models.CASCADE, related_name="+")
    resource = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=IncidentKind.choices)
    state = models.CharField(max_length=8, choices=IncidentState.choices, default=IncidentState.OPEN)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    # What opened it: the streak length and threshold, or the last success and the freshness target.
    failures_in_row = models.IntegerField(default=0)
    threshold = models.CharField(max_length=64, blank=True, default="")
    last_success_at = models.DateTimeField(null=True, blank=True)
    detail = models.TextField(blank=True, default="", help_text="Redacted")
    # Set by whoever claims the notification (compare-and-set): exactly one sender per event.
    alert_sent_at = models.DateTimeField(null=True, blank=True)
    recovery_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "resource", "kind"],
                condition=models.Q(state="open"),
                name="uniq_open_incident",
            )
        ]
        indexes = [models.Index(fields=["state", "kind"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of connection {self.connection_id} {self.resource} ({self.state})"


class Notification(models.Model):
    """One message an incident sent (or tried to): what, where, and how it went. Never a secret."""

    class Event(models.TextChoices):
        OPENED = "opened", "Alert"
        RECOVERED = "recovered", "Recovery"

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    class Status(models.TextChoices):
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        REFUSED = "refused", "Refused by the outbound guard"
        SKIPPED = "skipped", "Skipped"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=16, choices=Event.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=16, choices=Status.choices)
    recipients = models.IntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.event} by {self.channel}: {self.status}"
