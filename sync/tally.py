"""Finished whole-connection runs counted per (kind, tier, minute) in sync.RunTally: the scheduler status's
throughput of the last hour and mean run time without reading run history."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.db.models import F

from core import clock

from .models import RunTally

TALLY_KEEP = dt.timedelta(days=1)


def tally_record(kind: str, tier: str, *, ok: bool, seconds: float, now: dt.datetime | None = None) -> None:
    """Count one finished whole-connection run in its minute (an increment, or the minute's first row)."""
    minute = (now or clock.now()).replace(second=0, microsecond=0)
    changes = {"runs": F("runs") + 1, "busy_seconds": F("busy_seconds") + max(seconds, 0.0)}
    if not ok:
        changes["failures"] = F("failures") + 1
    key = {"kind": kind, "tier": tier or "", "minute": minute}
    if RunTally.objects.filter(**key).update(**changes):
        return
    try:
        with transaction.atomic():
            RunTally.objects.create(**key, runs=1, failures=0 if ok else 1, busy_seconds=max(seconds, 0.0))
    except IntegrityError:  # another worker created the minute's row first
        RunTally.objects.filter(**key).update(**changes)


def tally_purge(kind: str, *, now: dt.datetime | None = None) -> int:
    return RunTally.objects.filter(kind=kind, minute__lt=(now or clock.now()) - TALLY_KEEP).delete()[0]
