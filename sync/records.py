"""The abstract base of every domain table the engine writes into."""

from __future__ import annotations

from django.db import models

# What ``sync_hash`` holds in a row erased on request (a privacy redact): the engine's guarded upsert never
# writes that row again (bulk.Guard.sealed), whatever a later scan or webhook brings for its id. No source or
# content hash can equal it (they are 32 hex digits).
ERASED = "erased"


class SyncedRecord(models.Model):
    """A local copy of one upstream record, keyed by (connection, external_id) - the binding of OCA's
    connector. Deletions upstream set ``deleted_at``; rows are never hard-deleted by a sync."""

    organization = models.ForeignKey("sync.Organization", on_delete=models.CASCADE, related_name="+")
    # No index of its own: the binding's unique index (connection, external_id) leads with it and serves every
    # per-connection lookup. A second index cost every row insert, and gave the planner a worse choice for the
    # engine's per-id probes (one probe became a scan of the connection's rows; tests/sync/test_convergence.py).
    connection = models.ForeignKey("connectors.Connection", on_delete=models.CASCADE, related_name="+", db_index=False)
    external_id = models.CharField(max_length=255)
    upstream_created_at = models.DateTimeField(null=True, blank=True)
    upstream_updated_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # When the row was last WRITTEN by a sync (an unchanged snapshot writes nothing, so it keeps its time).
    synced_at = models.DateTimeField(null=True, blank=True)
    # The upstream's order of snapshots (Resource.version_field), normalised so that text order is the
    # declared type's order (zero-padded integers, UTC timestamps of one format): an upsert never replaces
    # a newer snapshot with an older one. NULL: the upstream gave none.
    sync_version = models.CharField(max_length=64, null=True, blank=True)
    # A hash of the mapped values: a snapshot equal to the stored one writes nothing.
    # (A database default too: rows written by plain SQL, such as the bench's reference loop, stay valid.)
    sync_hash = models.CharField(max_length=32, blank=True, default="", db_default="")
    # Vendor-specific fields a staff user may want but that have no column of their own.
    extra = models.JSONField(default=dict, blank=True)

    class Meta:
        abstract = True

    @classmethod
    def binding_constraint(cls, name: str) -> models.UniqueConstraint:
        return models.UniqueConstraint(fields=["connection", "external_id"], name=name)
