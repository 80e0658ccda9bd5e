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
    # Failure streaks and staleness for every connection, in bulk (alerts/; a string: sync imports no app).
    ScheduleSpec(name="synchub:alerts", func="alerts.tasks.evaluate", schedule_type=Schedule.MINUTES, minutes=5),
]


def next_cron_run(expression: str, *, after: dt.datetime | None = None) -> dt.datetime:
    from croniter import croniter

    if not croniter.is_valid(expression):
        raise ValueError(f"invalid cron expression {expression!r}")
    base = after or clock.now()
    return croniter(expression, base).get_next(dt.datetime)
