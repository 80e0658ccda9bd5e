"""MDM's tables: the ineligible items (the engine writes them) and the history of exports, one per engine
run (what the admin and the API read; the failure alert is the generic one, alerts/)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from sync.records import SyncedRecord


class IneligibleItem(SyncedRecord):
    """One ineligible item as MDM lists it: the engine's domain table for ``ineligible_items`` (the
    DocumentSink renders the non-deleted rows into the S3 export after each complete run)."""

    sku = models.CharField(max_length=255)
    reason = models.TextField(blank=True, default="")  # free text: kept whole
    market = models.CharField(max_length=64, blank=True, default="")
    # As MDM sends it (the export repeats it verbatim), not parsed.
    item_updated_at = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        ordering = ["sku"]
        constraints = [SyncedRecord.binding_constraint("uniq_ineligibleitem_binding")]

    def __str__(self) -> str:
        return self.sku


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class ExportRun(models.Model):
    organization = models.ForeignKey(
        "sync.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    connection = models.ForeignKey(
        "connectors.Connection", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The engine run this export is the outcome of (None: it never became a run, e.g. no configuration).
    queue = models.OneToOneField(
        "sync.SyncQueue", null=True, blank=True, on_delete=models.SET_NULL, related_name="mdm_export"
    )
    origin = models.CharField(max_length=16, default="manual")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.IntegerField(null=True, blank=True)
    item_count = models.IntegerField(null=True, blank=True)
    rejected_count = models.IntegerField(default=0)
    s3_bucket = models.CharField(max_length=255, blank=True, default="")
    s3_key = models.CharField(max_length=1024, blank=True, default="")
    etag = models.CharField(max_length=255, blank=True, default="")
    error_stage = models.CharField(max_length=16, blank=True, default="")  # "mdm" | "s3" | "config"
    error_type = models.CharField(max_length=255, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    skip_reason = models.CharField(max_length=255, blank=True, default="")
    consecutive_failures = models.IntegerField(default=0)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-created_at"])]

    def __str__(self) -> str:
        return f"MDM export #{self.pk} ({self.status})"

    @property
    def s3_location(self) -> str:
        return f"s3://{self.s3_bucket}/{self.s3_key}" if self.s3_bucket else ""
