"""A Connection is one organization's account at one upstream (a store, a retailer, an endpoint)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from core import crypto
from core.http import outbound_url_validator
from core.redaction import register_secret


class Health(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    OK = "ok", "OK"
    DEGRADED = "degraded", "Degraded"
    DOWN = "down", "Down"


class Connection(models.Model):
    organization = models.ForeignKey("sync.Organization", on_delete=models.CASCADE, related_name="connections")
    kind = models.CharField(max_length=32, db_index=True)
    name = models.CharField(max_length=200)
    base_url = models.URLField(max_length=500, blank=True, default="")
    # Upstream account id (Tiendanube store id, Lightspeed domain prefix...), unique per kind when set.
    external_account_id = models.CharField(max_length=255, blank=True, default="")
    # Non-secret, kind-specific configuration (visible in admin/API).
    config = models.JSONField(default=dict, blank=True)
    # Secrets: a MultiFernet token of a JSON object. Never exposed; use .credentials.
    credentials_encrypted = models.TextField(blank=True, default="", editable=False)
    is_active = models.BooleanField(default=True)
    needs_reauth = models.BooleanField(default=False)
    consecutive_failures = models.IntegerField(default=0)
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.UNKNOWN)
    last_error = models.TextField(blank=True, default="")
    last_checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "external_account_id"],
                condition=~models.Q(external_account_id=""),
                name="uniq_connection_kind_account",
            )
        ]
        indexes = [models.Index(fields=["organization", "kind"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def clean(self) -> None:
        # The outbound address rule at save time (core.http): the admin form and full_clean() report a
        # private, metadata or otherwise refused base URL to the operator instead of saving it. In clean()
        # rather than field validators so the rule can change without a migration.
        super().clean()
        if self.base_url:
            try:
                outbound_url_validator(self.base_url)
            except ValidationError as exc:
                raise ValidationError({"base_url": exc.messages}) from None

    @property
    def credentials(self) -> dict:
        data = crypto.decrypt_json(self.credentials_encrypted)
        for value in data.values():
            if isinstance(value, str):
                register_secret(value)
        return data

    @credentials.setter
    def credentials(self, data: dict) -> None:
        for value in (data or {}).values():
            if isinstance(value, str):
                register_secret(value)
        self.credentials_encrypted = crypto.encrypt_json(data or {})

    def update_credentials(self, **changes) -> None:
        """Merge changes into the stored secrets (None removes a key). Caller saves."""
        data = self.credentials
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        self.credentials = data

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_encrypted)
