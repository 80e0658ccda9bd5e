"""Schedules this connector contributes (registered by ``manage.py sync_schedules``)."""

from __future__ import annotations

from django_q.models import Schedule

from sync.schedules import ScheduleSpec

from . import selectors
from .resources import RESOURCES


def schedule_specs() -> list[ScheduleSpec]:
    specs = [
        ScheduleSpec(
            name="woocommerce:purge-webhook-deliveries",
            func="connectors.woocommerce.services.webhook_deliveries_purge",
            schedule_type=Schedule.DAILY,
        ),
    ]
    for conn in selectors.scheduled_connections():
        minutes = int(conn.config["sync_every_minutes"])
        for resource in RESOURCES:
            specs.append(
                ScheduleSpec(
                    name=f"woocommerce:{conn.pk}:{resource}",
                    func="sync.tasks.start_scheduled_sync",
                    schedule_type=Schedule.MINUTES,
                    minutes=minutes,
                    args=f"{conn.pk}, {resource!r}",
                )
            )
    return specs
