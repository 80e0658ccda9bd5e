"""Schedules, registered idempotently by `manage.py sync_schedules` (never in AppConfig.ready()).

django-q2's Schedule.name is not unique, so we upsert by name; CRON next_run is set explicitly because
Schedule.save() computes it only on insert (stack-notes §3)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django_q.models import Schedule

from core import clock


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    func: str
    schedule_type: str
    minutes: int | None = None
    cron: str | None = None
    args: str = ""
    kwargs: str = ""
    repeats: int = -1  # -1 forever, 0 paused
    next_run: dt.datetime | None = None


SYSTEM_SCHEDULES = [
    ScheduleSpec(name="synchub:reaper", func="sync.tasks.reap", schedule_type=Schedule.MINUTES, minutes=1),
    ScheduleSpec(name="synchub:purge", func="sync.tasks.purge", schedule_type=Schedule.DAILY),
]


def next_cron_run(expression: str, *, after: dt.datetime | None = None) -> dt.datetime:
    from croniter import croniter

    if not croniter.is_valid(expression):
        raise ValueError(f"invalid cron expression {expression!r}")
    base = after or clock.now()
    return croniter(expression, base).get_next(dt.datetime)


def schedule_upsert(spec: ScheduleSpec) -> Schedule:
    """Create or update one schedule; the returned row's ``change`` says which ("created", "updated",
    "unchanged") and ``removed`` how many duplicate rows of its name were deleted."""
    defaults = {
        "func": spec.func,
        "schedule_type": spec.schedule_type,
        "minutes": spec.minutes,
        "cron": spec.cron,
        "args": spec.args or None,
        "kwargs": spec.kwargs or None,
        "repeats": spec.repeats,
    }
    if spec.schedule_type == Schedule.CRON:
        defaults["next_run"] = spec.next_run or next_cron_run(spec.cron or "")
    elif spec.next_run is not None:
        defaults["next_run"] = spec.next_run
    existing = Schedule.objects.filter(name=spec.name).order_by("id")
    obj = existing.first()
    if obj is None:
        obj = Schedule(name=spec.name, **defaults)
        if obj.next_run is None:
            obj.next_run = clock.now()
        obj.full_clean(exclude=["task", "hook", "cluster", "intended_date_kwarg"])
        obj.save()
        obj.change, obj.removed = "created", 0
        return obj
    removed, _ = existing.exclude(pk=obj.pk).delete()  # heal duplicates left by older racy registrations
    changed = any(getattr(obj, key) != value for key, value in defaults.items())
    for key, value in defaults.items():
        setattr(obj, key, value)
    if changed:
        obj.save()
    obj.change, obj.removed = ("updated" if changed else "unchanged"), removed
    return obj


def contributed_specs() -> list[ScheduleSpec]:
    """What each registered connector declares (``Connector.schedules``)."""
    from .registry import KINDS, get_connector

    specs: list[ScheduleSpec] = []
    for kind in KINDS:
        schedule_specs = get_connector(kind).hook("schedules")
        if schedule_specs is not None:
            specs.extend(schedule_specs())
    return specs


def schedules_register_all() -> list[Schedule]:
    return [schedule_upsert(spec) for spec in [*SYSTEM_SCHEDULES, *contributed_specs()]]
