"""Reads for Tiendanube: stores scoped to the caller's organizations, scheduler status, staleness."""

from __future__ import annotations

import datetime as dt

from django.core.cache import cache
from django.db.models import Count, Max, Q, QuerySet

from connectors.models import Connection
from core import clock
from sync.models import RunSchedule, RunSlot
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


PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


def store_units(*, user) -> QuerySet[RunSchedule]:
    """The caller's stores' whole-connection schedule units."""
    return scope(RunSchedule.objects.filter(connection__kind=KIND, resource=""), user)


def _row(conn: Connection, sched: RunSchedule | None, running: bool) -> dict:
    return {
        "id": conn.pk,
        "name": conn.name,
        "store_id": conn.external_account_id,
        "organization": conn.organization_id,
        "tier": sched.tier if sched else None,
        "state": sched.state if sched else "unscheduled",
        "needs_reauth": conn.needs_reauth,
        "failures_in_row": sched.failures_in_row if sched else 0,
        "syncing": running,
        "next_sync_at": sched.next_sync_at if sched else None,
        "last_sync_at": sched.last_sync_at if sched else None,
        "last_success_at": sched.last_success_at if sched else None,
        "last_error": sched.last_error if sched else "",
    }


def scheduler_status(*, user, page: int = 1, page_size: int = PAGE_SIZE, late_only: bool = False) -> dict:
    """The original system's shape (running, total, active, pending, failed, stores) with the stores paginated,
    plus the fleet's capacity per tier (sync.policy_selectors.fleet_capacity) and the late stores (oldest
    first). A constant number of queries whatever the number of stores, and one pass over the units for every
    count (sync.policy_selectors.fleet_unit_counts): no count scans the fleet twice."""
    from sync.policy_selectors import fleet_capacity, fleet_unit_counts, late_units
    from sync.scheduler import running_connection_ids

    now = clock.now()
    page_size = max(1, min(int(page_size or PAGE_SIZE), MAX_PAGE_SIZE))
    page = max(1, int(page or 1))
    stores = store_list(user=user)
    units = store_units(user=user)
    per_tier = fleet_unit_counts(KIND, units_qs=units, now=now)
    # "failed": needs a reconnect, or its unit has a failure streak (a hashed subquery over the few failing
    # units, served by the run_schedule_failing index).
    failing = RunSchedule.objects.filter(resource="", failures_in_row__gt=0).values("connection_id")
    counts = stores.aggregate(total=Count("pk"), failed=Count("pk", filter=Q(needs_reauth=True) | Q(pk__in=failing)))
    counts["active"] = sum(c["stores"] for c in per_tier.values())
    counts["pending"] = sum(c["pending"] for c in per_tier.values())
    late_count = sum(c["backlog"] for c in per_tier.values())
    running_ids = running_connection_ids(now).values_list("connection_id", flat=True)
    counts["syncing"] = RunSlot.objects.filter(connection__in=stores.values("pk"), lease_until__gt=now).count()
    late = late_units(KIND, units_qs=units, now=now)
    if late_only:
        matching = late_count
        ids = list(late.values_list("connection_id", flat=True)[(page - 1) * page_size : page * page_size])
        conns = {c.pk: c for c in stores.filter(pk__in=ids)}
        page_conns = [conns[i] for i in ids if i in conns]
    else:
        matching = counts["total"]
        page_conns = list(stores.order_by("organization_id", "name", "pk")[(page - 1) * page_size : page * page_size])
    ids = [c.pk for c in page_conns]
    scheds = {s.connection_id: s for s in RunSchedule.objects.filter(connection_id__in=ids, resource="")}
    running = set(running_ids.filter(connection_id__in=ids))
    late_top = [
        {
            "id": s.connection_id,
            "name": s.connection.name,
            "tier": s.tier,
            "next_sync_at": s.next_sync_at,
            "late_seconds": round((now - s.next_sync_at).total_seconds(), 1),
        }
        for s in late.only("connection_id", "tier", "next_sync_at", "connection__name")[:LATE_PREVIEW]
    ]
    return {
        "running": scheduler_alive(),
        **counts,
        "capacity": fleet_capacity(KIND, units_qs=units, now=now, counts=per_tier),
        "late_count": late_count,
        "late": late_top,
        "page": page,
        "page_size": page_size,
        "pages": max(1, -(-matching // page_size)),
        "stores_matching": matching,
        "stores": [_row(c, scheds.get(c.pk), c.pk in running) for c in page_conns],
    }


LATE_PREVIEW = 20


def health_last() -> dict | None:
    return cache.get(HEALTH_CACHE_KEY)
