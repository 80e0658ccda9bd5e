"""Schedules contributed to `manage.py sync_schedules`: the 30-minute health check and one schedule per
store (its state - tier, backoff, pause - is kept by services.schedule_sync after every run)."""

from __future__ import annotations

from django_q.models import Schedule

from sync.schedules import ScheduleSpec

HEALTH = ScheduleSpec(
    name="tiendanube:health",
    func="connectors.tiendanube.tasks.health_check",
    schedule_type=Schedule.MINUTES,
    minutes=30,
)


def schedule_specs() -> list[ScheduleSpec]:
    from .models import StoreSchedule
    from .services import schedule_spec

    return [HEALTH, *(schedule_spec(s) for s in StoreSchedule.objects.select_related("connection"))]
