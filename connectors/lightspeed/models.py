"""Lightspeed's own tables: pending OAuth connects and the customer groups resource."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from sync.records import SyncedRecord


class OAuthState(models.Model):
    """One pending "connect a retailer" attempt. Only a SHA-256 of the random ``state`` is stored, so a
    database read cannot be replayed as a callback. Single use (``used_at``), bound to the user who
    started it and to that user's browser session (``session_hash``, a SHA-256 of the session key, so a
    state link opened in another session of the same user is refused), and short-lived (``expires_at``)."""

    state_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    organization = models.ForeignKey("sync.Organization", on_delete=models.CASCADE, related_name="+")
    connection_name = models.CharField(max_length=200, blank=True, default="")
    session_hash = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["expires_at"])]

    def __str__(self) -> str:
        return f"OAuth connect by user {self.user_id} for org {self.organization_id}"


class CustomerGroup(SyncedRecord):
    """A Lightspeed customer group (``/api/2.0/customer_groups``): the worked example of adding a resource."""

    name = models.TextField(blank=True, default="")  # free text: kept whole
    group_code = models.CharField(max_length=255, blank=True, default="")
    # Lightspeed versions are global integers that outgrow JavaScript numbers: kept as text.
    version = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        ordering = ["name", "id"]
        constraints = [SyncedRecord.binding_constraint("uniq_lightspeed_customergroup_binding")]

    def __str__(self) -> str:
        return self.name or self.external_id
