"""The run-start half of a RunPolicy (sync.policy): may this run start now?

- ``enabled_setting``: a feature flag (a Django setting). Off: the run is not started; ``sync_start``
  records it as skipped with the reason (activity ``run.skipped``, SyncStatus ``skipped``, the sink's
  outcome hook) and raises ``RunSkipped``. Nothing is fetched.
- ``throttle``: at most one run per (connection, resource) within the window. An automatic trigger
  (schedule, a user opening a view, a webhook hint) inside the window is a no-op: it gets the last run
  back, not an error and not a new run. Explicit staff actions (admin "Sync now"/"Refresh now", the API
  trigger, manage.py) and ``force=True`` are not throttled. The fact is the database's own: the last run's
  ``started_at`` plus the one-active-run constraint, so it holds across processes without a flag of ours.
  A throttled resource also waits out the upstream's own window: while the wait a 429 advised on the last
  run (its ``run.failed`` activity) has not passed, automatic triggers get that run back (MuleSoft's seed
  rule: no refresh during a 429 window, however short the throttle is set).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Q

from core import clock

from .models import Lane, Origin, QueueState, SyncActivity, SyncQueue
from .policy import RunPolicy
from .selectors import setting_get

# Who is throttled: triggers nobody asked for explicitly.
AUTOMATIC_ORIGINS = frozenset({Origin.SCHEDULE, Origin.LOGIN, Origin.WEBHOOK})


def run_policy(connection, resource: str) -> RunPolicy:
    """A resource's own ``policy`` attribute wins over its connector's."""
    from .registry import get_connector

    connector = get_connector(connection.kind)
    return getattr(connector.resource(resource), "policy", None) or connector.policy


def disabled_reason(policy: RunPolicy) -> str:
    """Why runs are off ("" when they are on)."""
    name = policy.enabled_setting
    if name and not getattr(settings, name, True):
        return f"runs are disabled ({name}=false)"
    return ""


def throttle_window(policy: RunPolicy, connection) -> dt.timedelta | None:
    """The declared window; ``extra["throttle_setting"]`` names a SystemSetting (seconds, per organization
    else global) that overrides it, so operators tune it without a deploy."""
    window = policy.throttle
    name = policy.extra.get("throttle_setting") if policy.extra else None
    if window is not None and name:
        value = setting_get(name, organization=connection.organization, default=None)
        try:
            if value is not None:
                window = dt.timedelta(seconds=max(0, int(value)))
        except (TypeError, ValueError):
            pass
    return window


def throttled_by(connection, resource: str, policy: RunPolicy, *, origin: str, force: bool) -> SyncQueue | None:
    """The run inside the throttle window that makes this request a no-op, or None (go ahead)."""
    if force or origin not in AUTOMATIC_ORIGINS:
        return None
    window = throttle_window(policy, connection)
    if window is None:
        return None
    if held := rate_limit_hold(connection, resource):
        return held
    if not window:
        return None
    # An active run (started or not) or one started inside the window. started_at comes from core.clock,
    # like every engine time (created_at is the database's auto_now_add).
    return (
        SyncQueue.objects.filter(connection=connection, resource=resource, lane=Lane.RUN)
        .filter(Q(is_active=True) | Q(started_at__gt=clock.now() - window))
        .order_by("-id")
        .first()
    )


def rate_limit_hold(connection, resource: str) -> SyncQueue | None:
    """The last run, when it failed on a rate limit whose advised wait has not yet passed."""
    last = (
        SyncQueue.objects.filter(connection=connection, resource=resource, lane=Lane.RUN, is_active=False)
        .order_by("-id")
        .first()
    )
    if last is None or last.state != QueueState.FAILED:
        return None
    data = (
        SyncActivity.objects.filter(queue=last, event="run.failed")
        .order_by("-id")
        .values_list("data", flat=True)
        .first()
    )
    wait = (data or {}).get("wait")
    ended = last.finished_at or last.started_at
    if not wait or ended is None:
        return None
    return last if ended + dt.timedelta(seconds=float(wait)) > clock.now() else None
