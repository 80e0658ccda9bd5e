"""Per-connection schedules: every active Lightspeed connection syncs each resource every
LIGHTSPEED_SYNC_MINUTES minutes (0 = none). Registered by `manage.py sync_schedules`."""

from __future__ import annotations

from django_q.models import Schedule

from sync.schedules import ScheduleSpec

from . import conf
from .connector import connector


def schedule_specs() -> list[ScheduleSpec]:
    from connectors.models import Connection

    minutes = conf.sync_minutes()
    if minutes <= 0:
        return []
    specs = []
    for pk in Connection.objects.filter(kind="lightspeed", is_active=True).values_list("pk", flat=True):
        for resource in connector.resources:
            specs.append(
                ScheduleSpec(
                    name=f"lightspeed:{pk}:{resource}",
                    func="sync.tasks.start_scheduled_sync",
                    schedule_type=Schedule.MINUTES,
                    minutes=minutes,
                    args=f"{pk}, {resource!r}",
                )
            )
    return specs
