"""Reads of the run-policy state (sync.runpolicy): failure streaks for alerting, late units."""

from __future__ import annotations

import datetime as dt

from django.db.models import QuerySet

from core import clock

from .models import RunSchedule
from .registry import get_connector


def failure_streaks(*, kind: str | None = None, min_streak: int | None = None) -> QuerySet[RunSchedule]:
    """Units (connection, resource) whose consecutive failed runs reached ``min_streak`` (default: the
    smallest ``failure_streak`` any policy declares, 3 unless changed), worst first. For alerting."""
    qs = RunSchedule.objects.select_related("connection")
    if kind:
        qs = qs.filter(connection__kind=kind)
    threshold = min_streak if min_streak is not None else (get_connector(kind).policy.failure_streak if kind else 3)
    return qs.filter(failures_in_row__gte=max(1, threshold)).order_by("-failures_in_row", "connection_id", "resource")


def failure_streak(connection, resource: str = "") -> int:
    row = RunSchedule.objects.filter(connection=connection, resource=resource).values("failures_in_row").first()
    return row["failures_in_row"] if row else 0


def is_stale(sched: RunSchedule, interval: dt.timedelta, *, now: dt.datetime | None = None) -> bool:
    """Last success older than the unit's interval (or never)."""
    now = now or clock.now()
    return sched.last_success_at is None or now - sched.last_success_at >= interval


# --- Fleet capacity (tiered kinds: sync.scheduler) -------------------------------------------------------------
def fleet_unit_counts(kind: str, *, units_qs: QuerySet | None = None, now: dt.datetime | None = None) -> dict:
    """Per tier, in ONE pass over the kind's units (conditional aggregates, grouped by tier): ``units`` (all),
    ``stores`` (schedulable), ``backlog`` and ``oldest`` (due: sync.scheduler.due_q), ``queued`` (schedulable,
    queued and not stale) and ``pending`` (queued, or next run time come). The scheduler status used to run
    one scan of every unit per figure; at 10,000 stores each scan costs 10-35 ms."""
    from django.db.models import Count, Min, Q

    from . import scheduler

    now = now or clock.now()
    qs = units_qs if units_qs is not None else scheduler.units(kind)
    schedulable = scheduler.schedulable_q()
    due = scheduler.due_q(now)
    rows = (
        qs.values("tier")
        .annotate(
            units=Count("pk"),
            stores=Count("pk", filter=schedulable),
            backlog=Count("pk", filter=due),
            oldest=Min("next_sync_at", filter=due),
            queued=Count("pk", filter=schedulable & Q(queued_at__gte=now - scheduler.queued_stale_after())),
            pending=Count("pk", filter=Q(queued_at__isnull=False) | Q(next_sync_at__lte=now)),
        )
        .order_by()
    )
    return {row.pop("tier"): row for row in rows}


def fleet_capacity(
    kind: str, *, units_qs: QuerySet | None = None, now: dt.datetime | None = None, counts: dict | None = None
) -> dict:
    """Per tier: stores, backlog (due and not running), lag (how late the oldest due store is), runs in the
    last hour; and for the kind: the parallel cap, the runs an hour the tiers need, the runs an hour the cap
    can serve at the last hour's mean run time, and whether that keeps up. Two queries (the units' counts,
    unless ``counts`` from fleet_unit_counts is given, and the last hour's tallies), whatever the fleet size.
    ``units_qs`` narrows to the caller's organizations."""
    from django.db.models import Sum

    from . import runpolicy
    from .models import RunTally

    now = now or clock.now()
    policy = runpolicy.policy_of(kind)
    tiers_decl = policy.schedule
    if counts is None:
        counts = fleet_unit_counts(kind, units_qs=units_qs, now=now)
    # A tier none of whose units is schedulable or due (all paused, say) is listed only if declared.
    counts = {tier: c for tier, c in counts.items() if c["stores"] or c["backlog"]}
    hour = now - dt.timedelta(hours=1)
    tallies = {
        row["tier"]: row
        for row in RunTally.objects.filter(kind=kind, minute__gte=hour)
        .values("tier")
        .annotate(runs=Sum("runs"), failures=Sum("failures"), busy=Sum("busy_seconds"))
        .order_by()
    }
    names = list(tiers_decl.intervals) if hasattr(tiers_decl, "intervals") else [""]
    names += [t for t in {*counts, *tallies} if t not in names]
    rows, needed = [], 0.0
    for tier in names:
        interval = (
            runpolicy.tier_interval(policy, tier or tiers_decl.default) if hasattr(tiers_decl, "intervals") else None
        )
        c = counts.get(tier, {})
        stores = c.get("stores", 0)
        lag = (now - c["oldest"]).total_seconds() if c.get("oldest") else 0.0
        need = stores * 3600 / interval.total_seconds() if interval else 0.0
        needed += need
        t = tallies.get(tier, {})
        rows.append(
            {
                "tier": tier,
                "interval_seconds": int(interval.total_seconds()) if interval else None,
                "stores": stores,
                "backlog": c.get("backlog", 0),
                "queued": c.get("queued", 0),
                "lag_seconds": round(max(lag, 0.0), 1),
                "late": bool(interval and lag > interval.total_seconds()),
                "runs_last_hour": t.get("runs") or 0,
                "failures_last_hour": t.get("failures") or 0,
                "runs_needed_per_hour": round(need, 1),
            }
        )
    runs = sum(r["runs_last_hour"] for r in rows)
    busy = sum((tallies.get(r["tier"], {}).get("busy") or 0.0) for r in rows)
    cap = runpolicy.max_parallel(kind)
    mean = busy / runs if runs else None
    capacity = (cap * 3600 / mean) if (cap and mean) else None
    return {
        "kind": kind,
        "max_parallel": cap,
        "max_parallel_setting": policy.max_parallel_setting,
        "runs_last_hour": runs,
        "mean_run_seconds": round(mean, 2) if mean else None,
        "runs_needed_per_hour": round(needed, 1),
        "capacity_per_hour": round(capacity, 1) if capacity else None,
        # Unknown (None) until a run finished in the last hour; False: the cap cannot serve the tiers.
        "keeps_up": None if capacity is None else capacity >= needed,
        "tiers": rows,
    }


def late_units(kind: str, *, units_qs: QuerySet | None = None, now: dt.datetime | None = None) -> QuerySet:
    """Due units (oldest first): late by ``now - next_sync_at``. Paginate it; never list it whole."""
    from . import scheduler

    qs = units_qs if units_qs is not None else scheduler.units(kind)
    return scheduler.due_units(kind, now=now, queryset=qs).select_related("connection").order_by("next_sync_at", "pk")
