"""Facts the metrics and probes read that no other table keeps."""

from django.conf import settings
from django.db import models


class WorkerHeartbeat(models.Model):
    """One row per qcluster (host and pid): when it last finished a task (or started)."""

    worker = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.worker} @ {self.seen_at:%Y-%m-%d %H:%M:%S}"


class RateLimitCount(models.Model):
    """429 answers per connection since the row was created (a Prometheus counter: it only grows)."""

    connection = models.OneToOneField(
        settings.SYNC_CONNECTION_MODEL, on_delete=models.CASCADE, related_name="+", primary_key=True
    )
    count = models.BigIntegerField(default=0)
    last_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.connection_id}: {self.count}"
