"""Reads for the probes and the metrics: a constant number of aggregate queries, whatever the fleet size."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Max

from core import clock

from .models import WorkerHeartbeat


def broker_kind() -> str:
    from django_q.conf import Conf

    return "orm" if Conf.ORM else "redis"


def broker_queue_depth() -> int:
    """Tasks waiting in the broker (ORM: unleased OrmQ rows of our queue; Redis: the list's length)."""
    from django_q.brokers import get_broker

    return int(get_broker().queue_size() or 0)


def heartbeat_summary(*, within_seconds: int) -> dict:
    """Age of the newest qcluster heartbeat (None if never) and how many clusters beat within the window."""
    now = clock.now()
    agg = WorkerHeartbeat.objects.aggregate(
        latest=Max("seen_at"), alive=Count("pk", filter=_since(now, within_seconds))
    )
    latest = agg["latest"]
    return {
        "age_seconds": None if latest is None else max((now - latest).total_seconds(), 0.0),
        "alive": agg["alive"],
    }


def _since(now: dt.datetime, seconds: int):
    from django.db.models import Q

    return Q(seen_at__gte=now - dt.timedelta(seconds=seconds))
