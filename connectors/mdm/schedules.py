"""The export's django-q2 CRON schedule (picked up by sync.schedules.contributed_specs)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django_q.models import Schedule

from sync.schedules import ScheduleSpec, next_cron_run
from sync.selectors import setting_get

from . import conf


def validated_cron(expression: str | None = None) -> str:
    """The configured cron expression, or a loud error: an invalid one must never be a silent no-op."""
    expr = (expression if expression is not None else settings.INELIGIBLE_ITEMS_SYNC_CRON_SCHEDULE or "").strip()
    try:
        next_cron_run(expr)
    except (ValueError, KeyError, TypeError) as exc:
        raise ImproperlyConfigured(
            f"INELIGIBLE_ITEMS_SYNC_CRON_SCHEDULE={expr!r} is not a valid 5-field cron expression (UTC), "
            f"e.g. '0 * * * *': {exc}"
        ) from None
    return expr


def export_spec() -> ScheduleSpec:
    cron = validated_cron()
    paused = not settings.INELIGIBLE_ITEMS_SYNC_ENABLED or bool(setting_get(conf.PAUSED_SETTING, default=False))
    return ScheduleSpec(
        name=conf.SCHEDULE_NAME,
        func="connectors.mdm.tasks.mdm_export_scheduled",
        schedule_type=Schedule.CRON,
        cron=cron,
        repeats=0 if paused else -1,
        next_run=next_cron_run(cron),
    )


def schedule_specs() -> list[ScheduleSpec]:
    return [export_spec()]
