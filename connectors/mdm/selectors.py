"""Reads: the ineligible items (through this process's cache), its status, and the export history."""

from __future__ import annotations

from django.db.models import QuerySet

from core import clock

from .models import ExportRun
from .readcache import ITEMS_CACHE, ItemsCache, Snapshot, shared_version


def ineligible_items(*, sku: str | None = None, items_cache: ItemsCache | None = None) -> tuple[list[dict], Snapshot]:
    """Items from the in-memory copy (loaded from S3 on first use / after an export). ``sku`` filters by
    exact SKU (comma-separated for several). Raises readcache.ItemsUnavailable when there is no copy."""
    snap = (items_cache or ITEMS_CACHE).get()
    items = snap.items
    if sku:
        wanted = {s.strip() for s in sku.split(",") if s.strip()}
        items = [i for i in items if isinstance(i, dict) and str(i.get("sku")) in wanted]
    return items, snap


def ineligible_items_cache_status(*, items_cache: ItemsCache | None = None) -> dict:
    """This process's copy: age and item count (for the admin), without loading anything."""
    snap = (items_cache or ITEMS_CACHE).peek()
    version = shared_version()
    if snap is None:
        return {
            "loaded": False,
            "item_count": 0,
            "loaded_at": None,
            "age_seconds": None,
            "version": None,
            "shared_version": version,
            "up_to_date": False,
            "stale": False,
            "last_error": "",
            "etag": "",
        }
    return {
        "loaded": True,
        "item_count": snap.count,
        "loaded_at": snap.loaded_at.isoformat() if snap.loaded_at else None,
        "age_seconds": round(snap.age_seconds(clock.now()) or 0.0, 1),
        "version": snap.version,
        "shared_version": version,
        "up_to_date": snap.version == version,
        "stale": snap.stale,
        "last_error": snap.last_error,
        "etag": snap.etag,
    }


def export_run_list() -> QuerySet[ExportRun]:
    return ExportRun.objects.select_related("organization", "actor").order_by("-created_at", "-id")


def export_last_run() -> ExportRun | None:
    return export_run_list().exclude(status__in=["queued"]).first()


def export_operable_by(user) -> bool:
    """Superusers, and staff members of the organization that owns the export (the MDM account's)."""
    from sync.selectors import organization_ids_for

    from .services import ExportConfigError, export_connection

    if not (user and user.is_active and user.is_staff):
        return False
    if user.is_superuser:
        return True
    try:
        org_id = export_connection().organization_id
    except ExportConfigError:
        return False
    return org_id is not None and org_id in (organization_ids_for(user) or [])
