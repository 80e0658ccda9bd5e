"""Writes of the ops app: schedule auto-registration, worker heartbeats, 429 counts."""

from __future__ import annotations

import logging
import os
import socket
from collections import Counter

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import F

from core import clock

from .models import RateLimitCount, WorkerHeartbeat

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_SECONDS = 15.0  # at most one heartbeat write per qcluster per this interval
_last_beat = {"at": 0.0}


def schedules_autoregister(*, reason: str, using: str = DEFAULT_DB_ALIAS) -> Counter | None:
    """Register every schedule (sync.runpolicy.schedules_register) unless turned off or the tables are not
    there yet (a partial `migrate app 0001`). Returns the change counts, or None when it did nothing."""
    if not settings.SYNC_SCHEDULES_AUTOREGISTER or using != DEFAULT_DB_ALIAS:
        return None
    from django.apps import apps
    from django_q.models import Schedule

    needed = {Schedule._meta.db_table, apps.get_model(settings.SYNC_CONNECTION_MODEL)._meta.db_table}
    if not needed <= set(connections[using].introspection.table_names()):
        log.info("schedules not registered after %s: tables missing (migrate every app first)", reason)
        return None
    from sync.runpolicy import schedules_register

    counts = Counter(schedules_register().summary())
    log.info(
        "schedules registered after %s: %s created, %s updated, %s unchanged, %s removed",
        reason,
        counts["created"],
        counts["updated"],
        counts["unchanged"],
        counts["removed"],
        # Prefixed: "created" would collide with LogRecord.created (logging raises KeyError).
        extra={"event": "schedules.registered", "reason": reason, **{f"schedules_{k}": n for k, n in counts.items()}},
    )
    return counts


def worker_name() -> str:
    """The qcluster this process belongs to: host and the pid of the cluster's main process."""
    return f"{socket.gethostname()}:{os.getenv('SYNCHUB_QCLUSTER_PID') or os.getpid()}"


def heartbeat_record(*, force: bool = False) -> bool:
    """Note that this qcluster is alive. Throttled per process so a busy cluster writes a few rows a minute."""
    now_mono = clock.get().monotonic()
    if not force and now_mono - _last_beat["at"] < HEARTBEAT_EVERY_SECONDS:
        return False
    _last_beat["at"] = now_mono
    WorkerHeartbeat.objects.update_or_create(worker=worker_name()[:200], defaults={"seen_at": clock.now()})
    return True


def rate_limited_record(connection_id: int) -> None:
    """Count one 429. After the caller's transaction commits, so the counter row is never locked while a
    sync holds its own transaction open."""

    def bump() -> None:
        now = clock.now()
        if RateLimitCount.objects.filter(connection_id=connection_id).update(count=F("count") + 1, last_at=now):
            return
        try:
            with transaction.atomic():
                RateLimitCount.objects.create(connection_id=connection_id, count=1, last_at=now)
        except IntegrityError:  # created meanwhile by another worker (or the connection is gone)
            RateLimitCount.objects.filter(connection_id=connection_id).update(count=F("count") + 1, last_at=now)

    transaction.on_commit(bump, robust=True)
