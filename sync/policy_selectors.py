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
