"""Reads for Tiendanube: stores scoped to the caller's organizations, scheduler status, staleness."""

from __future__ import annotations

import datetime as dt

from django.core.cache import cache
from django.db.models import Max, Q, QuerySet

from connectors.models import Connection
from core import clock
from sync.models import RunSchedule, RunSlot, ScheduleState
from sync.selectors import organization_ids_for, scope

from .models import PendingInstall, Tier

KIND = "tiendanube"
HEALTH_CACHE_KEY = "tiendanube:health:last"
# A store whose newest upstream change (or webhook) is this recent is "high"; within the second, "medium".
HIGH_ACTIVITY = dt.timedelta(hours=2)
MEDIUM_ACTIVITY = dt.timedelta(days=3)


def store_list(*, user) -> QuerySet[Connection]:
    return scope(Connection.objects.filter(kind=KIND).select_related("organization"), user)


def pending_install_list(*, user) -> QuerySet[PendingInstall]:
    """Installs nobody has chosen an organization for are open to every staff user; once an organization is
    chosen (admin) or the store claimed, only that organization's staff see it."""
    qs = PendingInstall.objects.all()
    ids = organization_ids_for(user)
    if ids is None:
        return qs
    return qs.filter(Q(organization__isnull=True, claimed_at__isnull=True) | Q(organization_id__in=ids))


def store_get(*, user, connection_id: int) -> Connection:
    """Raises Connection.DoesNotExist for another organization's store (the view answers 404)."""
    return store_list(user=user).get(pk=connection_id)


def latest_upstream_change(connection: Connection) -> dt.datetime | None:
    from commerce.models import Order, Product
    from customers.models import Customer

    stamps = [
        model.objects.filter(connection=connection).aggregate(m=Max("upstream_updated_at"))["m"]
        for model in (Product, Order, Customer)
    ]
    stamps = [s for s in stamps if s is not None]
    return max(stamps) if stamps else None


def tier_for(last_activity: dt.datetime | None, *, now: dt.datetime | None = None) -> str:
    now = now or clock.now()
    if last_activity is None:
        return Tier.LOW
    age = now - last_activity
    if age <= HIGH_ACTIVITY:
        return Tier.HIGH
    if age <= MEDIUM_ACTIVITY:
        return Tier.MEDIUM
    return Tier.LOW


def scheduler_alive(*, now: dt.datetime | None = None) -> bool:
    """A qcluster reports itself in the shared cache (Stat), or a task finished recently (the health
    schedule runs every 30 minutes, so a live cluster always leaves one)."""
    from django_q.models import Success
    from django_q.status import Stat

    try:
        if Stat.get_all():
            return True
    except Exception:  # a cache that cannot be read must not break the status page
        pass
    now = now or dt.datetime.now(dt.UTC)
    return Success.objects.filter(stopped__gte=now - dt.timedelta(minutes=65)).exists()


def scheduler_status(*, user) -> dict:
    """The original system's shape: running, total, active, pending, failed + the caller's stores."""
    now = clock.now()
    stores = list(store_list(user=user).order_by("organization_id", "name"))
    rows, counts = [], {"total": 0, "active": 0, "pending": 0, "failed": 0, "syncing": 0}
    running_ids = set(
        RunSlot.objects.filter(connection__in=stores, lease_until__gt=now).values_list("connection_id", flat=True)
    )
    schedules = {s.connection_id: s for s in RunSchedule.objects.filter(connection__in=stores, resource="")}
    for conn in stores:
        sched = schedules.get(conn.pk)
        counts["total"] += 1
        state = sched.state if sched else "unscheduled"
        if (
            sched
            and state in (ScheduleState.ACTIVE, ScheduleState.BACKOFF)
            and conn.is_active
            and not conn.needs_reauth
        ):
            counts["active"] += 1
        if sched and (sched.queued_at is not None or (sched.next_sync_at and sched.next_sync_at <= now)):
            counts["pending"] += 1
        if conn.needs_reauth or (sched and sched.failures_in_row > 0):
            counts["failed"] += 1
        if conn.pk in running_ids:
            counts["syncing"] += 1
        rows.append(
            {
                "id": conn.pk,
                "name": conn.name,
                "store_id": conn.external_account_id,
                "organization": conn.organization_id,
                "tier": sched.tier if sched else None,
                "state": state,
                "needs_reauth": conn.needs_reauth,
                "failures_in_row": sched.failures_in_row if sched else 0,
                "syncing": conn.pk in running_ids,
                "next_sync_at": sched.next_sync_at if sched else None,
                "last_sync_at": sched.last_sync_at if sched else None,
                "last_success_at": sched.last_success_at if sched else None,
                "last_error": sched.last_error if sched else "",
            }
        )
    return {"running": scheduler_alive(), **counts, "stores": rows}


def health_last() -> dict | None:
    return cache.get(HEALTH_CACHE_KEY)
