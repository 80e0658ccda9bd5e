"""The scheduler tick of tiered kinds (a fleet of stores): ONE django-q2 schedule per kind (``<kind>:tick``,
every minute) finds the due units in sync.RunSchedule and enqueues their whole-connection runs in bulk.

Why not one django-q2 Schedule per store: django-q2's scheduler locks every due Schedule row in one
transaction and spends ~2 queries per schedule (22 s for 10,000 stores, all in one transaction). Here the
state is already ours (RunSchedule.next_sync_at), so a tick is:
- count what is queued and not started yet (``queued_at`` set) and enqueue at most ``SYNC_TICK_MAX_ENQUEUE``
  minus that: the broker never holds more than that many runs of a kind, so after an outage the backlog is
  worked off at a bounded rate (oldest due first) instead of flooding the broker;
- in chunks of ``SYNC_TICK_CHUNK``, each its own short transaction (``units_enqueue``): on PostgreSQL ONE
  statement marks the oldest due units queued, ``UPDATE ... SET queued_at WHERE id IN (SELECT ... FOR UPDATE
  SKIP LOCKED) RETURNING`` (two ticks never take the same unit; a unit being written elsewhere is left to the
  next tick); on SQLite a SELECT and then the UPDATE as a compare-and-set; then one bulk write of the broker
  rows (ORM broker: COPY in the same transaction, so a rolled-back chunk enqueues nothing; any other broker:
  pushed after the commit).
The worker clears ``queued_at`` when the run starts (or defers), so a unit is never enqueued twice while
queued, and a queued task that vanished (a broker restart) is re-enqueued once its mark is stale. One run per
(connection, resource) and the parallel cap stay the RunSlot rows' job (sync.runpolicy.slot_acquire).

Spreading: a unit's next run is set after its previous run finished (finish + tier interval), so a fleet's
runs stay spread by the order they were served in; new units get a stable jitter within their interval
(runpolicy.connection_specs) and bulk onboarding staggers first syncs at a bounded rate."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import NamedTuple

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from core import clock

from . import tally
from .models import RunSchedule, RunSlot, ScheduleState

log = logging.getLogger(__name__)

TICK_GROUP = "connection-runs"
DEFAULT_MAX_ENQUEUE = 500
DEFAULT_CHUNK = 1000


def max_enqueue() -> int:
    """Runs of one kind the broker may hold at once (queued, not started), so also the most one tick adds."""
    return max(1, int(getattr(settings, "SYNC_TICK_MAX_ENQUEUE", DEFAULT_MAX_ENQUEUE)))


def chunk_size() -> int:
    return max(1, int(getattr(settings, "SYNC_TICK_CHUNK", DEFAULT_CHUNK)))


def queued_stale_after() -> dt.timedelta:
    from .connection_runs import QUEUED_STALE_AFTER

    return QUEUED_STALE_AFTER


def units(kind: str) -> QuerySet[RunSchedule]:
    """The whole-connection units of one kind."""
    from .runpolicy import WHOLE

    return RunSchedule.objects.filter(connection__kind=kind, resource=WHOLE)


def schedulable_q() -> Q:
    """Units the scheduler serves: active or backing off, on an active connection that needs no reconnect."""
    return Q(
        state__in=(ScheduleState.ACTIVE, ScheduleState.BACKOFF),
        connection__is_active=True,
        connection__needs_reauth=False,
    )


def schedulable(qs: QuerySet[RunSchedule]) -> QuerySet[RunSchedule]:
    return qs.filter(schedulable_q())


def running_connection_ids(now: dt.datetime) -> QuerySet:
    """Connections holding a live run slot (a few rows: at most the parallel caps)."""
    return RunSlot.objects.filter(connection__isnull=False, lease_until__gt=now).values("connection_id")


def due_q(now: dt.datetime) -> Q:
    """Due: schedulable, next run time come, not queued (or its mark is stale), not running. A Q, so that a
    filter and a conditional aggregate (sync.policy_selectors.fleet_unit_counts) share one definition.
    "Not running" is ``connection_id NOT IN (the live slots)``: PostgreSQL hashes the few slot rows once
    instead of probing RunSlot per unit; the subquery never yields NULL (``connection__isnull=False``)."""
    return (
        schedulable_q()
        & Q(next_sync_at__lte=now)
        & (Q(queued_at__isnull=True) | Q(queued_at__lt=now - queued_stale_after()))
        & ~Q(connection_id__in=running_connection_ids(now))
    )


def due_units(kind: str, *, now: dt.datetime | None = None, queryset: QuerySet | None = None) -> QuerySet:
    """Units whose next run time has come, that are not queued (or whose mark is stale) and not running."""
    now = now or clock.now()
    return (queryset if queryset is not None else units(kind)).filter(due_q(now))


def in_flight(kind: str, *, now: dt.datetime | None = None) -> int:
    now = now or clock.now()
    return units(kind).filter(queued_at__gte=now - queued_stale_after()).count()


@dataclass
class TickReport:
    kind: str
    enqueued: int = 0
    in_flight_before: int = 0
    room: int = 0
    chunks: int = 0
    max_chunk_seconds: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def tick(kind: str, *, now: dt.datetime | None = None, limit: int | None = None) -> TickReport:
    """Enqueue the oldest due runs of ``kind``, at most ``limit`` (default SYNC_TICK_MAX_ENQUEUE minus what is
    already queued). Short transactions, one chunk each; safe to run twice at once (SKIP LOCKED + CAS)."""
    import time

    from . import runpolicy

    report = TickReport(kind=kind)
    policy = runpolicy.policy_of(kind)
    if not runpolicy.is_tiered(kind) or not runpolicy._enabled(policy):
        return report
    now = now or clock.now()
    report.in_flight_before = in_flight(kind, now=now)
    report.room = max(0, (limit if limit is not None else max_enqueue()) - report.in_flight_before)
    after = None  # keyset: each chunk starts past the last one, so no chunk rescans the rows marked before it
    while report.enqueued < report.room:
        n = min(chunk_size(), report.room - report.enqueued)
        started = time.perf_counter()
        with transaction.atomic():
            qs = due_units(kind, now=now).order_by("next_sync_at", "pk")
            if after is not None:
                qs = qs.filter(Q(next_sync_at__gt=after[0]) | Q(next_sync_at=after[0], pk__gt=after[1]))
            rows = units_enqueue(qs, n=n, now=now, origin="schedule")
            if not rows:
                break
            after = max((row.next_sync_at, row.pk) for row in rows)
        report.enqueued += len(rows)
        report.chunks += 1
        report.max_chunk_seconds = max(report.max_chunk_seconds, time.perf_counter() - started)
        if len(rows) < n:
            break
    tally.tally_purge(kind, now=now)
    if report.enqueued:
        log.info("scheduler tick %s: %s runs enqueued (%s were queued)", kind, report.enqueued, report.in_flight_before)
    return report


class Claimed(NamedTuple):
    pk: int
    connection_id: int
    next_sync_at: dt.datetime | None
    organization_id: int


def units_enqueue(qs: QuerySet, *, n: int, now: dt.datetime, origin: str) -> list[Claimed]:
    """Mark at most ``n`` units of ``qs`` (filtered and ordered by the caller: due, or stale for a login) queued
    and enqueue their whole-connection runs with ``origin``, all in the caller's transaction: one claim
    statement and one bulk enqueue whatever ``n``. A unit queued or locked by someone else is skipped.
    Returns the units enqueued, in ``qs`` order as far as the claim keeps it."""
    from .connection_runs import SYNC_TASK
    from .services import is_postgres

    rows = _claim_postgres(qs, n, now) if is_postgres() else _claim_cas(qs, n, now)
    rows.sort(key=lambda r: (r.next_sync_at or now, r.pk))
    enqueue_many(SYNC_TASK, [(row.connection_id, origin) for row in rows], group=TICK_GROUP)
    return rows


_CLAIMED = "id, connection_id, next_sync_at, organization_id"


def _claim_postgres(qs: QuerySet, n: int, now: dt.datetime) -> list[Claimed]:
    """ONE statement: ``UPDATE ... SET queued_at WHERE id IN (the first n of qs, FOR UPDATE SKIP LOCKED)
    RETURNING``, instead of a SELECT ... FOR UPDATE and then an UPDATE of the ids it returned. The subquery's
    row locks keep a concurrent tick (or login) off these rows until the caller's transaction commits."""
    from django.db import connection

    sub = qs.select_for_update(skip_locked=True, of=("self",)).values("pk")[:n]
    sql, params = sub.query.sql_with_params()
    table = connection.ops.quote_name(RunSchedule._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            # Only the quoted table name and Django-compiled SQL are interpolated; values are bound parameters.
            f"UPDATE {table} SET queued_at = %s WHERE id IN ({sql}) RETURNING {_CLAIMED}",  # noqa: S608
            [now, *params],
        )
        return [Claimed(*row) for row in cursor.fetchall()]


def _claim_cas(qs: QuerySet, n: int, now: dt.datetime) -> list[Claimed]:
    """Without row locks (SQLite): read the first n, then mark them with a compare-and-set; when another tick
    marked some in between, re-read which ones are ours."""
    fields = ("pk", "connection_id", "next_sync_at", "organization_id")
    rows = [Claimed(*row) for row in qs.values_list(*fields)[:n]]
    pks = [row.pk for row in rows]
    marked = (
        RunSchedule.objects.filter(pk__in=pks)
        .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=now - queued_stale_after()))
        .update(queued_at=now)
    )
    if marked != len(rows):
        rows = [Claimed(*row) for row in RunSchedule.objects.filter(pk__in=pks, queued_at=now).values_list(*fields)]
    return rows


# --- Bulk enqueue -------------------------------------------------------------------------------------------
def enqueue_many(func: str, arg_list: list[tuple], *, group: str):
    """Enqueue ``func(*args)`` for each args in one go. The ORM broker gets one bulk INSERT in the current
    transaction (enqueued exactly when it commits); any other broker gets one pipelined push after the commit
    (``transaction.on_commit``), as does inline mode (Q_SYNC, tests).
    Task packages are built like django_q.tasks.async_task builds them (ids only in args, never secrets)."""
    from django_q.brokers import get_broker
    from django_q.brokers.orm import ORM
    from django_q.conf import Conf
    from django_q.signals import pre_enqueue
    from django_q.signing import SignedPackage

    if not arg_list:
        return
    if Conf.SYNC:
        from django_q.tasks import async_task

        def run_inline():
            for args in arg_list:
                async_task(func, *args, group=group, task_name=f"{func.rsplit('.', 1)[-1]}-{args[0]}")

        transaction.on_commit(run_inline)
        return
    now = timezone.now()
    packs = []
    for args in arg_list:
        task = {
            "id": uuid.uuid4().hex,
            "name": f"{func.rsplit('.', 1)[-1]}-{args[0]}",
            "func": func,
            "args": tuple(args),
            "group": group,
        }
        if Conf.CACHED:
            task["cached"] = Conf.CACHED
        if Conf.ACK_FAILURES:
            task["ack_failure"] = Conf.ACK_FAILURES
        task["kwargs"] = {}
        task["started"] = now
        pre_enqueue.send(sender="django_q", task=task)
        packs.append(SignedPackage.dumps(task))
    broker = get_broker()
    if isinstance(broker, ORM):  # django-q2's or ops.broker's (a subclass): rows in the ORM's database
        from django_q.models import OrmQ

        from .services import is_postgres

        key = broker.list_key or Conf.CLUSTER_NAME
        if is_postgres() and Conf.ORM == DEFAULT_DB_ALIAS:
            # COPY: a third of bulk_create's time for 1,000 rows (no model instances, no per-field prep, no
            # array quoting of every payload). Same transaction, so still enqueued exactly when it commits.
            from .bulk import copy_rows

            copy_rows(OrmQ._meta.db_table, ("key", "payload", "lock"), ((key, p, now) for p in packs))
        else:
            OrmQ.objects.using(Conf.ORM).bulk_create(
                [OrmQ(key=key, payload=p, lock=now) for p in packs], batch_size=1000
            )
        return

    def push():
        connection = getattr(broker, "connection", None)
        if hasattr(connection, "pipeline"):  # Redis: one round trip per chunk
            pipe = connection.pipeline(transaction=False)
            for p in packs:
                pipe.rpush(broker.list_key, p)
            pipe.execute()
        else:
            for p in packs:
                broker.enqueue(p)

    transaction.on_commit(push)
