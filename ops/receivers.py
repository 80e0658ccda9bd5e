"""Signal receivers (connected in apps.py). Each one is thin and never lets an error escape into the
sender: django-q2's monitor process or an upstream request must not die because a metric could not be kept."""

from __future__ import annotations

import logging

from . import services

log = logging.getLogger(__name__)


def schedules_after_migrate(sender, using="default", **kwargs) -> None:
    services.schedules_autoregister(reason="migrate", using=using)


def worker_heartbeat(sender, task=None, **kwargs) -> None:
    """django-q2's post_execute, in the cluster's monitor process after each finished task."""
    try:
        services.heartbeat_record()
    except Exception:  # a failed heartbeat shows up as an old one on /readyz
        log.warning("worker heartbeat not recorded", exc_info=True)


def rate_limited_count(sender, connection=None, **kwargs) -> None:
    if connection is None or not getattr(connection, "pk", None):
        return
    try:
        services.rate_limited_record(connection.pk)
    except Exception:
        log.warning("429 not counted for connection %s", connection.pk, exc_info=True)
