"""The engine side of run policies (sync.policy): what a connector declares, executed generically.

- Schedules, registered in bulk and idempotently (``schedules_register``): ``Every`` and ``Cron`` get one
  django-q2 Schedule per (connection, resource); ``Tiers`` (a fleet: the unit is the whole connection in
  ``resource_order``, its tier sets the interval) gets ONE django-q2 Schedule per kind, ``<kind>:tick``, that
  runs sync.scheduler.tick over RunSchedule.next_sync_at (django-q2's own scheduler costs ~2 queries per
  schedule inside one transaction holding every due row: 22 s at 10,000 stores). A new unit's first run is
  spread over its interval by a hash of its name (jitter), so a fleet never comes due at once, and
  re-registering the same thing changes nothing.
- After a run (the ``sync_run_finished`` signal): the unit's failure streak, backoff after failures,
  needs-reauth after ``reauth_after`` failures in a row (schedules paused), the ``after_run`` hook.
- The parallel cap: ``RunSlot`` rows per kind; a run holds one while it runs; a connection holds at most one.

State lives in sync.RunSchedule / sync.RunSlot; nothing here knows a vendor."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils.module_loading import import_string
from django_q.models import Schedule

from core import clock
from core.redaction import redact

from .activity import activity_record
from .models import ActivityLevel, Lane, QueueState, RunSchedule, RunSlot, ScheduleState, SyncQueue
from .policy import Cron, Every, RunPolicy, Tiers
from .registry import KINDS, connection_model, get_connector
from .schedules import ScheduleSpec, next_cron_run

log = logging.getLogger(__name__)

WHOLE = ""  # RunSchedule.resource of a whole-connection unit (Tiers)
SCHEDULED_TASK = "sync.tasks.start_scheduled_sync"
CONNECTION_TASK = "sync.tasks.sync_connection"
TICK_TASK = "sync.tasks.schedule_tick"  # one per tiered kind: sync.scheduler.tick
PAUSED_STATES = (ScheduleState.NEEDS_REAUTH, ScheduleState.DISCONNECTED, ScheduleState.PAUSED)


# --- Reading the declaration ---------------------------------------------------------------------------------
def policy_of(kind: str) -> RunPolicy:
    return get_connector(kind).policy


def _override(name: str) -> int | None:
    """A setting, else an environment variable, of that name (None when neither is set)."""
    if not name:
        return None
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name)
    return None if value in (None, "") else int(value)


def max_parallel(kind: str) -> int | None:
    policy = policy_of(kind)
    cap = _override(policy.max_parallel_setting)
    cap = policy.max_parallel if cap is None else cap
    return None if cap is None else max(1, cap)


def reauth_after(kind: str) -> int | None:
    policy = policy_of(kind)
    n = _override(policy.reauth_after_setting)
    n = policy.reauth_after if n is None else n
    return None if n is None else max(1, n)


def failure_streak(kind: str) -> int:
    """Failed runs in a row that make a failure streak for this kind (alerting, alerts/)."""
    policy = policy_of(kind)
    n = _override(policy.failure_streak_setting)
    return max(1, policy.failure_streak if n is None else n)


def backoff_delay(policy: RunPolicy, failures_in_row: int) -> dt.timedelta | None:
    """The wait after the n-th consecutive failure; the last step repeats. None: no backoff declared."""
    if not policy.backoff:
        return None
    return policy.backoff[min(max(failures_in_row, 1), len(policy.backoff)) - 1]


def resource_order(kind: str) -> list[str]:
    """The connector's resources, the declared order first (a whole-connection run goes in this order)."""
    connector = get_connector(kind)
    declared = [r for r in connector.policy.resource_order if r in connector.resources]
    return declared + [r for r in connector.resources if r not in declared]


def is_tiered(kind: str) -> bool:
    return isinstance(policy_of(kind).schedule, Tiers)


def tier_interval(policy: RunPolicy, tier: str) -> dt.timedelta:
    tiers = policy.schedule
    assert isinstance(tiers, Tiers)
    return tiers.intervals.get(tier) or tiers.intervals[tiers.default]


def schedule_get(connection, resource: str = WHOLE) -> RunSchedule:
    sched, _ = RunSchedule.objects.get_or_create(
        connection=connection, resource=resource, defaults={"organization_id": connection.organization_id}
    )
    return sched


# --- Schedule specs ----------------------------------------------------------------------------------------------
def schedule_name(kind: str, connection_id: int, resource: str = WHOLE) -> str:
    return f"{kind}:{connection_id}" + (f":{resource}" if resource else "")


def jitter(name: str, interval: dt.timedelta) -> dt.timedelta:
    """A stable offset in [0, interval) from the schedule's name: first runs of a fleet spread evenly, and the
    same name always gets the same offset (re-registering changes nothing)."""
    seconds = max(int(interval.total_seconds()), 1)
    return dt.timedelta(seconds=int(hashlib.sha256(name.encode()).hexdigest()[:12], 16) % seconds)


def cron_expression(cron: Cron) -> str:
    expr = (cron.expression or str(getattr(settings, cron.setting, "") or "")).strip()
    try:
        next_cron_run(expr)
    except (ValueError, KeyError, TypeError) as exc:
        raise ImproperlyConfigured(
            f"{cron.setting or 'the cron expression'}={expr!r} is not a valid 5-field cron expression (UTC), "
            f"e.g. '0 * * * *': {exc}"
        ) from None
    return expr


def _enabled(policy: RunPolicy) -> bool:
    """Whether its schedules run: neither the run flag nor the schedule flag is off."""
    return all(
        bool(getattr(settings, name, True))
        for name in (policy.enabled_setting, policy.schedule_enabled_setting)
        if name
    )


def policy_enabled(policy: RunPolicy) -> bool:
    """Whether a policy's schedules run at all (alerting expects nothing from a kind switched off)."""
    return _enabled(policy)


def _interval(policy: RunPolicy, connection, sched: RunSchedule) -> dt.timedelta | None:
    s = policy.schedule
    if isinstance(s, Tiers):
        return tier_interval(policy, sched.tier or s.default)
    if isinstance(s, Every):
        interval = import_string(s.interval_from)(connection) if s.interval_from else s.interval
        return interval if interval and interval.total_seconds() >= 60 else None
    return None


def spec_for(connection, sched: RunSchedule, policy: RunPolicy | None = None) -> ScheduleSpec | None:
    """The django-q2 Schedule a unit should have (None: it should have none). ``next_run`` is given only when
    the policy state decides it (backoff, a tier's next sync, a cron); otherwise an existing row keeps its own
    and a new one starts at now + jitter."""
    policy = policy or policy_of(connection.kind)
    name = schedule_name(connection.kind, connection.pk, sched.resource)
    paused = sched.state in PAUSED_STATES or connection.needs_reauth or not connection.is_active or not _enabled(policy)
    s = policy.schedule
    if isinstance(s, Cron):
        expr = cron_expression(s)
        return ScheduleSpec(
            name=name,
            func=SCHEDULED_TASK,
            schedule_type=Schedule.CRON,
            cron=expr,
            args=f"{connection.pk}, {sched.resource!r}",
            repeats=0 if paused else -1,
        )
    if isinstance(s, Tiers):
        return None  # the kind's tick (sync.scheduler) serves every tiered unit from RunSchedule.next_sync_at
    interval = _interval(policy, connection, sched)
    if interval is None:
        return None
    next_run = sched.next_sync_at if sched.state == ScheduleState.BACKOFF else None
    return ScheduleSpec(
        name=name,
        func=SCHEDULED_TASK,
        schedule_type=Schedule.MINUTES,
        minutes=max(1, int(interval.total_seconds() // 60)),
        args=f"{connection.pk}, {sched.resource!r}",
        repeats=0 if paused else -1,
        next_run=next_run,
    )


@dataclass
class RegisterReport:
    changes: dict[str, str] = field(default_factory=dict)  # schedule name -> created | updated | unchanged | deleted

    removed: int = 0  # twins of a name healed away (older racy registrations)

    def count(self, change: str) -> int:
        return sum(1 for c in self.changes.values() if c == change)

    def summary(self) -> dict[str, int]:
        """created / updated / unchanged / removed (schedules deleted, twins included)."""
        counts = {c: self.count(c) for c in ("created", "updated", "unchanged")}
        return {**counts, "removed": self.count("deleted") + self.removed}


_FIELDS = ("func", "schedule_type", "minutes", "cron", "args", "kwargs", "repeats")


def schedules_apply(specs: Iterable[ScheduleSpec], *, report: RegisterReport | None = None) -> RegisterReport:
    """Create or update django-q2 Schedules by name in bulk (one read per chunk, bulk writes), without
    moving an existing row's next_run unless the spec sets one (a CRON row's next_run moves when its
    expression changes or it resumes, because Schedule.save() computes it only on insert)."""
    report = report or RegisterReport()
    specs = list(specs)
    now = clock.now()
    for start in range(0, len(specs), 500):
        chunk = specs[start : start + 500]
        existing: dict[str, Schedule] = {}
        extra: list[int] = []
        for obj in Schedule.objects.filter(name__in=[s.name for s in chunk]).order_by("id"):
            if obj.name in existing:
                extra.append(obj.pk)  # heal duplicates left by older racy registrations
            else:
                existing[obj.name] = obj
        if extra:
            Schedule.objects.filter(pk__in=extra).delete()
            report.removed += len(extra)
        creates, updates = [], []
        for spec in chunk:
            values = {
                "func": spec.func,
                "schedule_type": spec.schedule_type,
                "minutes": spec.minutes,
                "cron": spec.cron,
                "args": spec.args or None,
                "kwargs": spec.kwargs or None,
                "repeats": spec.repeats,
            }
            obj = existing.get(spec.name)
            if obj is None:
                if spec.next_run is not None:
                    next_run = spec.next_run
                elif spec.schedule_type == Schedule.CRON:
                    next_run = next_cron_run(spec.cron or "")
                elif spec.schedule_type == Schedule.MINUTES and spec.minutes:
                    next_run = now + jitter(spec.name, dt.timedelta(minutes=spec.minutes))
                else:
                    next_run = now
                creates.append(Schedule(name=spec.name, next_run=next_run, **values))
                report.changes[spec.name] = "created"
                continue
            next_run = obj.next_run
            if spec.next_run is not None:
                next_run = spec.next_run
            elif spec.schedule_type == Schedule.CRON and (
                obj.cron != spec.cron or (obj.repeats == 0 and spec.repeats != 0) or not obj.next_run
            ):
                next_run = next_cron_run(spec.cron or "")
            if all(getattr(obj, k) == v for k, v in values.items()) and obj.next_run == next_run:
                report.changes.setdefault(spec.name, "unchanged")
                continue
            for key, value in values.items():
                setattr(obj, key, value)
            obj.next_run = next_run
            updates.append(obj)
            report.changes[spec.name] = "updated"
        if creates:
            Schedule.objects.bulk_create(creates)
        if updates:
            Schedule.objects.bulk_update(updates, [*_FIELDS, "next_run"])
    return report


def schedule_mirror(sched: RunSchedule, connection=None) -> str:
    """Write one unit's state into its django-q2 Schedule (after a run, a pause, a resume). Returns the change."""
    connection = connection or sched.connection
    if is_tiered(connection.kind):
        return "tick"  # no Schedule of its own: the tick reads RunSchedule directly
    spec = spec_for(connection, sched)
    if spec is None:
        name = schedule_name(connection.kind, connection.pk, sched.resource)
        return "deleted" if Schedule.objects.filter(name=name).delete()[0] else "unchanged"
    change = schedules_apply([spec]).changes[spec.name]
    if sched.schedule_name != spec.name and sched.pk:
        RunSchedule.objects.filter(pk=sched.pk).update(schedule_name=spec.name)
        sched.schedule_name = spec.name
    return change


def tick_name(kind: str) -> str:
    return f"{kind}:tick"


def housekeeping_specs(kinds: Iterable[str] | None = None) -> list[ScheduleSpec]:
    """Connector-wide schedules: each kind's housekeeping tasks, and the tick of a tiered kind."""
    specs = []
    for kind in KINDS if kinds is None else kinds:
        policy = policy_of(kind)
        if isinstance(policy.schedule, Tiers):
            specs.append(
                ScheduleSpec(
                    name=tick_name(kind),
                    func=TICK_TASK,
                    schedule_type=Schedule.MINUTES,
                    minutes=1,
                    args=repr(kind),
                    repeats=-1 if _enabled(policy) else 0,
                )
            )
        for task in policy.housekeeping:
            daily = task.every == dt.timedelta(days=1)
            specs.append(
                ScheduleSpec(
                    name=task.name,
                    func=task.func,
                    schedule_type=Schedule.DAILY if daily else Schedule.MINUTES,
                    minutes=None if daily else max(1, int(task.every.total_seconds() // 60)),
                )
            )
    return specs


def _units(kind: str, policy: RunPolicy) -> list[str]:
    return [WHOLE] if isinstance(policy.schedule, Tiers) else resource_order(kind)


def connection_specs(kind: str) -> tuple[list[ScheduleSpec], list[str]]:
    """Every unit's spec for one kind, and the names of schedules that should not exist (any more).
    RunSchedule rows are created in bulk for active connections; a connection whose reconnect cleared
    needs_reauth gets its paused units back to active here too."""
    policy = policy_of(kind)
    if policy.schedule is None:
        return [], []
    Connection = connection_model()
    connections = list(Connection.objects.filter(kind=kind).order_by("pk"))
    units = _units(kind, policy)
    rows = {(r.connection_id, r.resource): r for r in RunSchedule.objects.filter(connection__kind=kind)}
    missing = [
        RunSchedule(
            organization_id=c.organization_id,
            connection=c,
            resource=u,
            tier=policy.schedule.default if isinstance(policy.schedule, Tiers) else "",
        )
        for c in connections
        if c.is_active
        for u in units
        if (c.pk, u) not in rows
    ]
    if missing:
        RunSchedule.objects.bulk_create(missing, ignore_conflicts=True)
        rows = {(r.connection_id, r.resource): r for r in RunSchedule.objects.filter(connection__kind=kind)}
    specs, gone = [], []
    tiered = isinstance(policy.schedule, Tiers)
    if tiered:
        # Per-store Schedules of older releases: the tick serves these units now.
        gone = list(
            Schedule.objects.filter(name__startswith=f"{kind}:", func=CONNECTION_TASK).values_list("name", flat=True)
        )
    unplanned = []
    now = clock.now()
    for conn in connections:
        for unit in units:
            sched = rows.get((conn.pk, unit))
            if sched is None:
                continue
            if sched.state == ScheduleState.NEEDS_REAUTH and conn.is_active and not conn.needs_reauth:
                _resume(sched)
            if tiered:
                if sched.next_sync_at is None and sched.state == ScheduleState.ACTIVE and conn.is_active:
                    # A first run spread over the tier's interval (stable per unit): never a fleet at once.
                    name = schedule_name(kind, conn.pk, unit)
                    sched.next_sync_at = now + jitter(
                        name, tier_interval(policy, sched.tier or policy.schedule.default)
                    )
                    unplanned.append(sched)
                continue
            spec = spec_for(conn, sched, policy)
            if spec is None:
                gone.append(schedule_name(kind, conn.pk, unit))
            else:
                specs.append(spec)
    if unplanned:
        RunSchedule.objects.bulk_update(unplanned, ["next_sync_at"], batch_size=1000)
    return specs, gone


RECONCILE_SUFFIX = ":reconcile"


def reconcile_resources(kind: str) -> list[str]:
    """Resources whose incremental runs cannot see deletions: a cursor, and missing rows to mark deleted."""
    connector = get_connector(kind)
    return [
        name
        for name, r in connector.resources.items()
        if getattr(r, "cursor_kind", "none") != "none" and getattr(r, "mark_missing_deleted", False)
    ]


def reconcile_interval(connection, policy: RunPolicy | None = None) -> dt.timedelta | None:
    """The connection's reconciliation interval: its config["reconcile_hours"], else the policy's."""
    policy = policy or policy_of(connection.kind)
    hours = (connection.config or {}).get("reconcile_hours")
    if hours not in (None, ""):
        try:
            interval = dt.timedelta(hours=float(hours))
        except (TypeError, ValueError):
            interval = policy.reconcile
    else:
        interval = policy.reconcile
    return interval if interval and interval.total_seconds() >= 60 else None


def reconcile_specs(connection, policy: RunPolicy | None = None) -> tuple[list[ScheduleSpec], list[str]]:
    """One full-scan schedule per incremental resource of the connection (``<kind>:<id>:<resource>:reconcile``,
    ``start_scheduled_sync(id, resource, True)``), and the names that should not exist."""
    policy = policy or policy_of(connection.kind)
    interval = reconcile_interval(connection, policy)
    paused = connection.needs_reauth or not connection.is_active or not _enabled(policy)
    specs, gone = [], []
    for resource in reconcile_resources(connection.kind):
        name = schedule_name(connection.kind, connection.pk, resource) + RECONCILE_SUFFIX
        if interval is None:
            gone.append(name)
            continue
        specs.append(
            ScheduleSpec(
                name=name,
                func=SCHEDULED_TASK,
                schedule_type=Schedule.MINUTES,
                minutes=max(1, int(interval.total_seconds() // 60)),
                args=f"{connection.pk}, {resource!r}, True",
                repeats=0 if paused else -1,
            )
        )
    return specs, gone


def reconcile_register(connection) -> RegisterReport:
    """(Re)write one connection's reconciliation schedules (after it changed, paused or resumed)."""
    specs, gone = reconcile_specs(connection)
    report = schedules_apply(specs)
    Schedule.objects.filter(name__in=gone).delete()
    return report


def schedules_register() -> RegisterReport:
    """Every schedule the policies declare (housekeeping + per unit + reconciliation), in bulk, idempotently."""
    from .schedules import SYSTEM_SCHEDULES

    report = schedules_apply([*SYSTEM_SCHEDULES, *housekeeping_specs()])
    for kind in KINDS:
        specs, gone = connection_specs(kind)
        policy = policy_of(kind)
        for conn in connection_model().objects.filter(kind=kind).order_by("pk"):
            more, less = reconcile_specs(conn, policy)
            specs += more
            gone += less
        schedules_apply(specs, report=report)
        for start in range(0, len(gone), 1000):
            chunk = gone[start : start + 1000]
            for name in Schedule.objects.filter(name__in=chunk).values_list("name", flat=True):
                report.changes[name] = "deleted"
            Schedule.objects.filter(name__in=chunk).delete()
    return report


# --- Pause / resume ---------------------------------------------------------------------------------------------
def _resume(sched: RunSchedule) -> None:
    sched.state = ScheduleState.ACTIVE
    sched.failures_in_row = 0
    sched.last_error = ""
    sched.save(update_fields=["state", "failures_in_row", "last_error"])


def connection_pause(connection, *, state: str, reason: str) -> None:
    """Pause every unit of the connection (needs reconnect / disconnected): schedules get repeats=0."""
    schedules_apply(housekeeping_specs([connection.kind]))
    for sched in _connection_units(connection):
        sched.state = state
        sched.next_sync_at = None
        sched.queued_at = None
        sched.last_error = redact(reason)[:2000]
        sched.save(update_fields=["state", "next_sync_at", "queued_at", "last_error"])
        schedule_mirror(sched, connection)
    reconcile_register(connection)


def connection_resume(connection, *, next_sync_at: dt.datetime | None = None) -> None:
    """The connection was (re)connected: its units are active again with a clean streak. The kind's
    housekeeping schedules exist from its first connection on (not only after the next deploy)."""
    schedules_apply(housekeeping_specs([connection.kind]))
    for sched in _connection_units(connection):
        sched.state = ScheduleState.ACTIVE
        sched.failures_in_row = 0
        sched.last_error = ""
        if is_tiered(connection.kind):
            policy = policy_of(connection.kind)
            sched.tier = sched.tier or policy.schedule.default
            sched.next_sync_at = next_sync_at or clock.now() + tier_interval(policy, sched.tier)
        sched.save()
        schedule_mirror(sched, connection)
    reconcile_register(connection)


def _connection_units(connection) -> list[RunSchedule]:
    policy = policy_of(connection.kind)
    if policy.schedule is None:
        return list(RunSchedule.objects.filter(connection=connection))
    return [schedule_get(connection, u) for u in _units(connection.kind, policy)]


def connection_mark_needs_reauth(connection, *, reason: str) -> None:
    from .services import connection_mark_needs_reauth as mark

    if not connection.needs_reauth:
        mark(connection=connection, reason=reason)
    connection_pause(connection, state=ScheduleState.NEEDS_REAUTH, reason=reason)
    activity_record(
        event=f"{connection.kind}.schedule_paused",
        connection=connection,
        level=ActivityLevel.ERROR,
        message=f"schedule paused, reconnect: {reason}",
    )


# --- After a run -------------------------------------------------------------------------------------------------
def streak_record(connection, resource: str, *, ok: bool, error: str = "", now: dt.datetime | None = None) -> None:
    """The failure-streak signal: consecutive failed runs per (connection, resource), in one statement."""
    now = now or clock.now()
    sched = schedule_get(connection, resource)
    if ok:
        RunSchedule.objects.filter(pk=sched.pk).update(
            failures_in_row=0, last_sync_at=now, last_success_at=now, last_error=""
        )
    else:
        RunSchedule.objects.filter(pk=sched.pk).update(
            failures_in_row=F("failures_in_row") + 1,
            last_sync_at=now,
            last_failure_at=now,
            last_error=redact(error)[:2000],
        )


@dataclass
class UnitResult:
    outcome: str  # "success" | "failed" | "needs_reauth"
    failures_in_row: int = 0
    next_sync_at: dt.datetime | None = None


def unit_record_result(
    connection, sched: RunSchedule, *, ok: bool, error: str = "", states: dict | None = None
) -> UnitResult:
    """Move one unit after its run: success -> active (a tiered unit gets its tier and next sync); failure ->
    back off per the policy; after reauth_after failures in a row (or a 401 seen by the engine) ->
    needs-reauth, schedules paused."""
    policy = policy_of(connection.kind)
    now = clock.now()
    sched.refresh_from_db()
    sched.last_sync_at = now
    tiered = isinstance(policy.schedule, Tiers)
    if ok:
        if tiered:
            if policy.schedule.classify:
                sched.tier = import_string(policy.schedule.classify)(connection, sched, now)
            sched.tier = sched.tier or policy.schedule.default
            sched.next_sync_at = now + tier_interval(policy, sched.tier)
        else:
            sched.next_sync_at = None
        sched.failures_in_row = 0
        sched.last_success_at = now
        sched.last_error = ""
        sched.state = ScheduleState.ACTIVE
        sched.save()
        schedule_mirror(sched, connection)
        return UnitResult("success", 0, sched.next_sync_at)
    sched.failures_in_row += 1
    sched.last_failure_at = now
    sched.last_error = redact(error)[:2000]
    connection.refresh_from_db(fields=["needs_reauth"])
    limit = reauth_after(connection.kind)
    if connection.needs_reauth or (limit is not None and sched.failures_in_row >= limit):
        sched.save()
        reason = (
            "the credentials were rejected (401)"
            if connection.needs_reauth
            else f"{sched.failures_in_row} failed syncs in a row"
        )
        if tiered and connection.needs_reauth:
            reason = "the token was rejected (401)"
        connection_mark_needs_reauth(connection, reason=reason)
        return UnitResult("needs_reauth", sched.failures_in_row)
    delay = backoff_delay(policy, sched.failures_in_row)
    if delay is not None:
        sched.state = ScheduleState.BACKOFF
        sched.next_sync_at = now + delay
    sched.save()
    schedule_mirror(sched, connection)
    label = sched.resource or "connection"
    activity_record(
        event=f"{connection.kind}.sync_failed" if sched.resource else f"{connection.kind}.store_sync_failed",
        connection=connection,
        level=ActivityLevel.ERROR,
        message=f"{label} sync failed ({sched.failures_in_row} in a row)"
        + (f"; retry at {sched.next_sync_at:%H:%M} UTC" if delay is not None else "")
        + f": {redact(error)}",
        data={"states": states or {}, "failures_in_row": sched.failures_in_row},
    )
    return UnitResult("failed", sched.failures_in_row, sched.next_sync_at)


def after_run(connection, *, succeeded: bool, queues: list) -> None:
    path = policy_of(connection.kind).after_run
    if not path:
        return
    try:
        import_string(path)(connection=connection, succeeded=succeeded, queues=queues)
    except Exception as exc:  # a hook must never fail the run
        log.error("after-run hook %s for connection %s failed: %s", path, connection.pk, redact(exc))


def on_run_finished(sender, queue: SyncQueue, succeeded: bool, **kwargs) -> None:
    """sync_run_finished receiver: every finished run moves its (connection, resource) failure streak; a run
    of a per-resource unit also moves that unit (backoff, needs-reauth) and calls the after-run hook. A
    tiered connection's unit moves once per whole-connection run (connection_sync), not per resource."""
    if queue.lane != Lane.RUN or queue.state == QueueState.CANCELLED:
        return
    connection = queue.connection
    try:
        policy = policy_of(connection.kind)
    except Exception:
        return
    error = queue.last_error or queue.fetch_error
    if isinstance(policy.schedule, Tiers):
        streak_record(connection, queue.resource, ok=succeeded, error=error)
        return
    sched = schedule_get(connection, queue.resource)
    unit_record_result(connection, sched, ok=succeeded, error=error or f"run #{queue.pk} ended {queue.state}")
    after_run(connection, succeeded=succeeded, queues=[queue])


# --- The parallel cap -------------------------------------------------------------------------------------------
class AlreadyRunning(Exception):
    pass


def _slot_lease() -> dt.timedelta:
    return dt.timedelta(seconds=int(settings.Q_CLUSTER.get("timeout") or 900) + 60)


def slot_acquire(connection) -> RunSlot | None:
    """Take one of the kind's ``max_parallel`` slots for this connection (None: all busy). Raises
    AlreadyRunning if the connection holds a live slot. Rows + unique(connection) make both rules DB facts."""
    from .services import is_postgres

    kind = connection.kind
    cap = max_parallel(kind) or 1
    existing = set(RunSlot.objects.filter(kind=kind, number__lte=cap).values_list("number", flat=True))
    if len(existing) < cap:
        RunSlot.objects.bulk_create(
            [RunSlot(kind=kind, number=n) for n in range(1, cap + 1) if n not in existing], ignore_conflicts=True
        )
    now = clock.now()
    with transaction.atomic():
        qs = RunSlot.objects.filter(kind=kind, number__lte=cap).order_by("number")
        if is_postgres():
            qs = qs.select_for_update()  # serialises acquirers of this kind on PostgreSQL
        slots = list(qs)
        held = RunSlot.objects.filter(connection_id=connection.pk).first()  # any kind: one slot per connection
        if held is not None:
            if held.lease_until and held.lease_until > now:
                raise AlreadyRunning(f"connection {connection.pk} is already syncing")
            slot_release(held)  # its worker died: the lease ran out
        for slot in slots:
            if slot.pk == getattr(held, "pk", None):
                slot.connection_id, slot.lease_until = None, None
            if slot.connection_id is not None and slot.lease_until and slot.lease_until > now:
                continue
            try:
                with transaction.atomic():
                    # Compare-and-set on the holder we read: SQLite has no row locks.
                    won = RunSlot.objects.filter(
                        pk=slot.pk, connection_id=slot.connection_id, lease_until=slot.lease_until
                    ).update(connection=connection, acquired_at=now, lease_until=now + _slot_lease())
            except IntegrityError:  # unique(connection): a concurrent worker took a slot for this connection
                raise AlreadyRunning(f"connection {connection.pk} is already syncing") from None
            if won:
                slot.refresh_from_db()
                return slot
    return None


def slot_release(slot: RunSlot) -> None:
    RunSlot.objects.filter(pk=slot.pk, connection_id=slot.connection_id).update(
        connection=None, acquired_at=None, lease_until=None
    )


def is_running(connection_id: int, *, now: dt.datetime | None = None) -> bool:
    return RunSlot.objects.filter(connection_id=connection_id, lease_until__gt=now or clock.now()).exists()


@contextmanager
def run_gate(queue: SyncQueue) -> Iterator[bool]:
    """Every engine run of a kind with a cap (a trigger, Sync now, a retry, the reaper's resume, manage.py
    sync_run) takes a slot, so the cap and "never the same connection twice" hold on every path. Webhook-lane
    queues hold records already fetched one by one, not a run, and pass; so do kinds without a cap."""
    kind = queue.connection.kind
    if queue.lane != Lane.RUN or max_parallel(kind) is None:
        yield True
        return
    try:
        slot = slot_acquire(queue.connection)
        reason = f"all {max_parallel(kind)} {kind} run slots are busy"
    except AlreadyRunning:
        slot, reason = None, "this connection is already syncing"
    if slot is None:
        activity_record(
            event=f"{kind}.run_held_back",
            queue=queue,
            level=ActivityLevel.WARNING,
            message=f"run of {queue.resource} held back: {reason}; it resumes when a slot frees up",
        )
        yield False
        return
    try:
        yield True
    finally:
        slot_release(slot)
