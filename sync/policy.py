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
    """A fixed interval per (connection, resource)."""

    interval: dt.timedelta


@dataclass(frozen=True)
class Tiers:
    """Priority tiers: each connection is in one tier (default ``default``); the tier sets its interval."""

    intervals: dict[str, dt.timedelta]
    default: str


@dataclass(frozen=True)
class Cron:
    """A cron expression, read from a setting (so operators change it without a deploy) or given literally."""

    setting: str = ""
    expression: str = ""


@dataclass(frozen=True)
class RunPolicy:
    schedule: Every | Tiers | Cron | None = None
    # Waits after the 1st, 2nd, 3rd ... consecutive failed run; the last one repeats. () = no backoff.
    backoff: tuple[dt.timedelta, ...] = ()
    # After this many consecutive auth failures the connection is marked needs-reauth and stops syncing.
    reauth_after: int | None = None
    # At most this many runs of this kind at once (never the same connection twice). None = no cap.
    max_parallel: int | None = None
    # At most one run per (connection, resource) within this window; extra triggers are skipped, not queued.
    throttle: dt.timedelta | None = None
    # The order resources run in when a whole connection syncs.
    resource_order: tuple[str, ...] = ()
    # Dotted path of ``hook(queue)`` called after every finished run (Tiendanube's post-sync signal).
    after_run: str = ""
    # A run that has not succeeded for this long is stale (alerting); None = three times the interval.
    freshness: dt.timedelta | None = None
    # Consecutive failed runs that make a failure streak (the signal alerting uses).
    failure_streak: int = 3
    # A boolean setting (a feature flag): when it is off, a run is not started; it is recorded as skipped
    # with the reason (MDM's INELIGIBLE_ITEMS_SYNC_ENABLED).
    enabled_setting: str = ""
    extra: dict = field(default_factory=dict)
