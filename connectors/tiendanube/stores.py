"""What is left of a store's life outside OAuth, webhooks, privacy and health: manual / login enqueues,
needs-reconnect and disconnect, and the two hooks its run policy declares (the tier after a run and the
post-sync signal). Scheduling, backoff and the parallel cap are the engine's (sync.runpolicy)."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.db.models import F, Q
from django_q.tasks import async_task

from connectors.models import Connection
from core import clock
from core.redaction import redact
from sync import runpolicy, scheduler
from sync.activity import activity_record
from sync.connection_runs import ConnectionUnavailable, connection_enqueue
from sync.models import ActivityLevel, Origin, RunSchedule, ScheduleState, SyncActivity

from . import conf, selectors
from .errors import StoreUnavailable
from .selectors import KIND
from .signals import store_synced

log = logging.getLogger(__name__)


def store_enqueue_sync(*, connection: Connection, origin: str = Origin.MANUAL, actor=None) -> bool:
    """Enqueue a store sync unless one is already queued or running. Never calls the upstream."""
    try:
        return connection_enqueue(connection=connection, origin=origin, actor=actor)
    except ConnectionUnavailable as exc:
        raise StoreUnavailable(str(exc)) from None


def stores_enqueue_all(*, connections, origin: str = Origin.MANUAL, actor=None) -> dict[int, str]:
    result: dict[int, str] = {}
    for conn in connections:
        try:
            result[conn.pk] = (
                "enqueued" if store_enqueue_sync(connection=conn, origin=origin, actor=actor) else "already queued"
            )
        except StoreUnavailable:
            result[conn.pk] = "needs reconnect"
    return result


def schedules_initialize(*, connections) -> int:
    """(Re)create the schedule state of each store, keeping it; stores without one get one, due at a stable
    jitter within their tier's interval. The kind's tick (the one django-q2 Schedule) is (re)registered."""
    runpolicy.schedules_apply(runpolicy.housekeeping_specs([KIND]))
    policy = runpolicy.policy_of(KIND)
    now = clock.now()
    n = 0
    for conn in connections:
        sched = runpolicy.schedule_get(conn)
        if conn.needs_reauth and sched.state not in runpolicy.PAUSED_STATES:
            sched.state = ScheduleState.NEEDS_REAUTH
            sched.save(update_fields=["state"])
        elif sched.next_sync_at is None and sched.state == ScheduleState.ACTIVE and conn.is_active:
            interval = runpolicy.tier_interval(policy, sched.tier or policy.schedule.default)
            sched.next_sync_at = now + runpolicy.jitter(runpolicy.schedule_name(KIND, conn.pk), interval)
            sched.save(update_fields=["next_sync_at"])
        n += 1
    return n


def login_sync(*, user) -> list[int]:
    """On login: enqueue a sync of each of the user's organizations' stores whose last success is older than
    its tier interval, skipping ones already queued or running, paused or needing a reconnect. Enqueue only,
    and in bulk: one claim statement, one INSERT of activity rows and one bulk enqueue, whatever the number of
    stale stores (one by one it cost ~6 queries a store: ~17 stores/s inside the login request). At most the
    room the scheduler tick leaves (SYNC_TICK_MAX_ENQUEUE minus what is queued), stalest first, so a login
    never floods the broker; the others are the tick's when they come due. Returns the connection ids."""
    org_ids = list(user.memberships.values_list("organization_id", flat=True))
    if not org_ids:
        return []
    now = clock.now()
    room = max(0, scheduler.max_enqueue() - scheduler.in_flight(KIND, now=now))
    if not room:
        return []
    tiers = runpolicy.policy_of(KIND).schedule
    stale = Q(last_success_at__isnull=True) | Q(
        ~Q(tier__in=list(tiers.intervals)), last_success_at__lte=now - tiers.intervals[tiers.default]
    )
    for tier, interval in tiers.intervals.items():
        stale |= Q(tier=tier, last_success_at__lte=now - interval)
    units = (
        RunSchedule.objects.filter(organization_id__in=org_ids, connection__kind=KIND, resource=runpolicy.WHOLE)
        .filter(scheduler.schedulable_q(), stale)
        .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=now - scheduler.queued_stale_after()))
        .exclude(connection_id__in=scheduler.running_connection_ids(now))
        .order_by(F("last_success_at").asc(nulls_first=True), "pk")
    )
    label = user.get_username()[:150]
    message = redact(f"{label} logged in; stale store sync enqueued")
    with transaction.atomic():
        rows = scheduler.units_enqueue(units, n=room, now=now, origin=Origin.LOGIN)
        SyncActivity.objects.bulk_create(
            [
                SyncActivity(
                    organization_id=row.organization_id,
                    connection_id=row.connection_id,
                    actor=user,
                    actor_label=label,
                    event="tiendanube.login_sync",
                    level=ActivityLevel.INFO,
                    message=message,
                    data={"origin": Origin.LOGIN},
                )
                for row in rows
            ],
            batch_size=1000,
        )
    if rows:
        log.info("tiendanube login sync: %s stale store(s) enqueued for %s", len(rows), label)
    return [row.connection_id for row in rows]


def store_mark_needs_reauth(conn: Connection, *, reason: str) -> None:
    runpolicy.connection_mark_needs_reauth(conn, reason=reason)


def store_disconnect(*, connection: Connection, reason: str) -> None:
    """Uninstalled: the token is dead. Forget it, mark the store, pause its schedule."""
    Connection.objects.filter(pk=connection.pk).update(
        needs_reauth=True, is_active=False, health="down", last_error=reason, credentials_encrypted=""
    )
    connection.refresh_from_db()
    runpolicy.connection_pause(connection, state=ScheduleState.DISCONNECTED, reason=reason)
    activity_record(
        event="tiendanube.disconnected",
        connection=connection,
        level=ActivityLevel.WARNING,
        message=f"store disconnected: {reason}; schedule paused",
    )


# --- The hooks the run policy declares (connector.py) ------------------------------------------------------
def tier_after_run(connection: Connection, sched: RunSchedule, now: dt.datetime) -> str:
    """After a good sync: the tier follows how recently the store changed (newest record or webhook)."""
    activity = max(filter(None, [selectors.latest_upstream_change(connection), sched.last_activity_at]), default=None)
    sched.last_activity_at = activity
    return selectors.tier_for(activity, now=now)


def post_sync(*, connection: Connection, succeeded: bool, queues) -> None:
    """After a store's products, orders and customers all synced: the ``store_synced`` signal in-process,
    plus an optional task (TIENDANUBE_POST_SYNC_HOOK)."""
    if not succeeded:
        return
    for receiver, result in store_synced.send_robust(sender=Connection, connection=connection):
        if isinstance(result, Exception):
            log.error("store_synced receiver %r failed: %s", receiver, redact(result))
    hook = conf.get().post_sync_hook
    if hook:
        async_task(hook, connection.pk, group="tiendanube-post-sync")
