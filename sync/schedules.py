"""Schedule specs and the system schedules. Everything is registered idempotently by
`manage.py sync_schedules` (sync.runpolicy.schedules_register; never in AppConfig.ready()): these and what
each connector's run policy declares.

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
        return obj
    existing.exclude(pk=obj.pk).delete()  # heal duplicates left by older racy registrations
    for key, value in defaults.items():
        setattr(obj, key, value)
    obj.save()
    return obj
