"""Run policies: what a connector DECLARES about when and how its runs happen; the engine executes them.

A connector (or one of its resources) states its schedule, its backoff after failed runs, when repeated auth
failures mean re-authorisation, how many of its runs may go at once, a throttle, the order of its resources,
an after-run hook and a freshness target. Nothing vendor-specific is coded in the engine: Tiendanube's tiers,
MuleSoft's hourly throttle and MDM's cron are each just a declaration."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Every:
    """A fixed interval per (connection, resource). ``interval_from`` (dotted path of
    ``f(connection) -> timedelta | None``) lets a connection choose its own (None or zero: not scheduled)."""

    interval: dt.timedelta
    interval_from: str = ""


@dataclass(frozen=True)
class Tiers:
    """Priority tiers: each connection is in one tier (default ``default``); the tier sets its interval."""

    intervals: dict[str, dt.timedelta]
    default: str
    # Dotted path of ``f(connection, schedule, now) -> tier``, asked after each successful run (Tiendanube:
    # by how recently the store changed). Empty: a connection keeps its tier.
    classify: str = ""


@dataclass(frozen=True)
class Cron:
    """A cron expression, read from a setting (so operators change it without a deploy) or given literally."""

    setting: str = ""
    expression: str = ""


@dataclass(frozen=True)
class Housekeeping:
    """A connector-wide periodic task (not per connection): WooCommerce's delivery purge, Tiendanube's
    health check. ``every`` of exactly one day registers a DAILY schedule, anything else MINUTES."""

    name: str
    func: str
    every: dt.timedelta


@dataclass(frozen=True)
class RunPolicy:
    schedule: Every | Tiers | Cron | None = None
    # Waits after the 1st, 2nd, 3rd ... consecutive failed run; the last one repeats. () = no backoff.
    backoff: tuple[dt.timedelta, ...] = ()
    # After this many consecutive failed runs (of one schedulable unit) the connection is marked needs-reauth
    # and its schedules pause. An auth failure (401/403) marks it at once, whatever this says (the engine).
    # Counts EVERY failed run, not only auth failures (an auth failure, 401/403/invalid_grant, marks needs-reauth
    # at once whatever this says): for an upstream whose credentials never expire and whose removal may go
    # unannounced, so that repeated failure means the access is gone (Tiendanube). Most connectors leave it None.
    reauth_after: int | None = None
    reauth_after_setting: str = ""  # a setting / environment variable that overrides reauth_after
    # At most this many runs of this kind at once (never the same connection twice). None = no cap.
    max_parallel: int | None = None
    max_parallel_setting: str = ""  # a setting / environment variable that overrides max_parallel
    # At most one run per (connection, resource) within this window; extra triggers are skipped, not queued.
    throttle: dt.timedelta | None = None
    # The order resources run in when a whole connection syncs.
    resource_order: tuple[str, ...] = ()
    # Dotted path of ``hook(*, connection, succeeded, queues)`` called once after every finished run unit: a
    # whole-connection run for Tiers (all resources in resource_order), one queue otherwise (Tiendanube's
    # post-sync signal). Errors are logged, never raised.
    after_run: str = ""
    # A run that has not succeeded for this long is stale (alerting); None = three times the interval.
    freshness: dt.timedelta | None = None
    # Consecutive failed runs that make a failure streak (the signal alerting uses; an alert rule of a
    # connection may override it).
    failure_streak: int = 3
    failure_streak_setting: str = ""  # a setting / environment variable that overrides failure_streak
    # A boolean setting (a feature flag): when it is off, a run is not started; it is recorded as skipped
    # with the reason (MDM's MDM_INTEGRATION_ENABLED). Its schedules are registered paused too.
    enabled_setting: str = ""
    # A boolean setting that pauses only the schedule (manual runs still go): MDM's INELIGIBLE_ITEMS_SYNC_ENABLED.
    schedule_enabled_setting: str = ""
    # Connector-wide periodic tasks registered with the schedules.
    housekeeping: tuple[Housekeeping, ...] = ()
    # Reconciliation (invariant 15): every incremental resource that marks missing rows deleted also gets a
    # full scan this often per connection (a cursor cannot see deletions). A connection may set its own
    # with config["reconcile_hours"] (0: none). None: no reconciliation schedule for this kind.
    reconcile: dt.timedelta | None = dt.timedelta(days=1)
    extra: dict = field(default_factory=dict)
