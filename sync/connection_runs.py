"""Whole-connection runs: every resource of one connection in the policy's ``resource_order``, inside one
run slot, then the connection's unit moves (tier, backoff, needs-reauth) and the after-run hook fires.
This is what a tiered schedule (sync.policy.Tiers) calls; a manual / login / connect enqueue goes through
``connection_enqueue``, which enqueues at most once while a run is queued or going."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django_q.tasks import async_task

from core import clock

from . import runpolicy
from .activity import activity_record
from .models import ActivityLevel, Origin, QueueState, RunSchedule, ScheduleState
from .registry import connection_model
from .tally import tally_record

log = logging.getLogger(__name__)
SYNC_TASK = runpolicy.CONNECTION_TASK
QUEUED_STALE_AFTER = dt.timedelta(minutes=30)
DEFER = dt.timedelta(minutes=1)


class ConnectionUnavailable(Exception):
    http_status = 409
    code = "store_unavailable"


@dataclass
class ConnectionRunResult:
    outcome: str  # "success" | "failed" | "needs_reauth" | "deferred" | "running" | "skipped"
    states: dict[str, str]
    error: str = ""


def run_task_name(connection_id: int) -> str:
    """The broker task name of an enqueued whole-connection run (manual, login, connect)."""
    return f"connection-run-{connection_id}"


def _enqueue(connection_id: int, origin: str) -> None:
    async_task(SYNC_TASK, connection_id, origin, task_name=run_task_name(connection_id), group="connection-runs")


def is_queued_or_running(sched: RunSchedule, *, now: dt.datetime | None = None) -> bool:
    now = now or clock.now()
    if sched.queued_at is not None and now - sched.queued_at < QUEUED_STALE_AFTER:
        return True
    return runpolicy.is_running(sched.connection_id, now=now)


def connection_enqueue(*, connection, origin: str = Origin.MANUAL, actor=None) -> bool:
    """Enqueue a whole-connection run unless one is already queued or running. Never calls the upstream."""
    if connection.needs_reauth or not connection.is_active:
        raise ConnectionUnavailable(f"{connection.name!r} needs to be reconnected before it can sync")
    now = clock.now()
    sched = runpolicy.schedule_get(connection)
    if runpolicy.is_running(connection.pk, now=now):
        return False
    # Compare-and-set: only one caller flips queued_at, so two clicks (or logins) enqueue once.
    claimed = (
        RunSchedule.objects.filter(pk=sched.pk)
        .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=now - QUEUED_STALE_AFTER))
        .update(queued_at=now)
    )
    if not claimed:
        return False
    activity_record(
        event=f"{connection.kind}.sync_enqueued",
        connection=connection,
        actor=actor,
        message=f"{origin} sync enqueued",
        data={"origin": origin},
    )
    conn_id = connection.pk
    transaction.on_commit(lambda: _enqueue(conn_id, origin))
    return True


def connection_sync(*, connection_id: int, origin: str = Origin.SCHEDULE, actor=None) -> ConnectionRunResult:
    """Run every resource of one connection in order inside one slot, then move its unit."""
    from .engine import run_queue
    from .services import SyncServiceError, sync_start

    Connection = connection_model()
    conn = Connection.objects.select_related("organization").get(pk=connection_id)
    sched = runpolicy.schedule_get(conn)
    if conn.needs_reauth or not conn.is_active:
        state = ScheduleState.NEEDS_REAUTH if conn.needs_reauth else ScheduleState.DISCONNECTED
        runpolicy.connection_pause(conn, state=state, reason="needs to be reconnected")
        return ConnectionRunResult("skipped", {}, "the connection needs to be reconnected")
    slot = None
    if runpolicy.max_parallel(conn.kind) is not None:
        try:
            slot = runpolicy.slot_acquire(conn)
        except runpolicy.AlreadyRunning as exc:
            # The going run sets the next time when it ends; the queued mark of this (extra) delivery goes.
            RunSchedule.objects.filter(pk=sched.pk).update(queued_at=None)
            return ConnectionRunResult("running", {}, str(exc))
        if slot is None:
            return _defer(conn, sched, origin)
    RunSchedule.objects.filter(pk=sched.pk).update(queued_at=None)
    started_at = time.monotonic()
    states: dict[str, str] = {}
    queues = []
    error = ""
    try:
        for resource in runpolicy.resource_order(conn.kind):
            try:
                started = sync_start(connection=conn, resource=resource, origin=origin, actor=actor, enqueue=False)
            except SyncServiceError as exc:
                states[resource], error = "skipped", str(exc)
                break
            queues.append(started.queue)
            states[resource] = run_queue(started.queue.pk) or QueueState.PROCESSING
            if states[resource] != QueueState.DONE:
                started.queue.refresh_from_db(fields=["last_error", "fetch_error"])
                error = (
                    error
                    or started.queue.last_error
                    or started.queue.fetch_error
                    or f"{resource} ended {states[resource]}"
                )
            conn.refresh_from_db(fields=["needs_reauth", "is_active"])
            if conn.needs_reauth:
                break
    finally:
        if slot is not None:
            runpolicy.slot_release(slot)
    succeeded = bool(states) and all(s == QueueState.DONE for s in states.values())
    result = runpolicy.unit_record_result(conn, sched, ok=succeeded, error=error, states=states)
    if runpolicy.is_tiered(conn.kind):
        tally_record(conn.kind, sched.tier, ok=succeeded, seconds=time.monotonic() - started_at)
    if succeeded:
        activity_record(
            event=f"{conn.kind}.store_synced",
            connection=conn,
            message=f"synced; tier {sched.tier or '-'}, next sync {result.next_sync_at:%H:%M} UTC",
            data={"tier": sched.tier, "states": states},
        )
    runpolicy.after_run(conn, succeeded=succeeded, queues=queues)
    return ConnectionRunResult(result.outcome, states, "" if succeeded else error)


def _defer(conn, sched: RunSchedule, origin: str) -> ConnectionRunResult:
    """All slots busy: due again in a minute; the queued mark goes, so the scheduler tick enqueues it then."""
    retry_at = clock.now() + DEFER
    RunSchedule.objects.filter(pk=sched.pk).update(next_sync_at=retry_at, queued_at=None)
    sched.next_sync_at = retry_at
    runpolicy.schedule_mirror(sched, conn)
    activity_record(
        event=f"{conn.kind}.sync_deferred",
        connection=conn,
        level=ActivityLevel.WARNING,
        message=f"{origin} sync deferred: {runpolicy.max_parallel(conn.kind)} {conn.kind} runs already going",
    )
    return ConnectionRunResult("deferred", {})
