"""Reads for alerting: who gets an alert, what threshold and freshness target apply, and the bulk reads
the evaluation makes (a fixed number of queries whatever the number of connections)."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.db.models import Count
from django.utils.module_loading import import_string

from sync import runpolicy
from sync.models import Membership
from sync.policy import Cron, Every, RunPolicy, Tiers
from sync.registry import KINDS
from sync.schedules import next_cron_run

from .models import AlertRule, Incident, IncidentState

STALE_FACTOR = 3  # default freshness target: three times the schedule interval


def recipients_by_org(organization_ids) -> dict[int, list[str]]:
    """Admin emails per organization (Membership role admin, active user with an email), one query."""
    rows = (
        Membership.objects.filter(
            organization_id__in=list(organization_ids), role=Membership.Role.ADMIN, user__is_active=True
        )
        .exclude(user__email="")
        .values_list("organization_id", "user__email")
    )
    out: dict[int, set[str]] = {}
    for org_id, email in rows:
        out.setdefault(org_id, set()).add(email)
    return {k: sorted(v) for k, v in out.items()}


def recipients(organization_id: int | None) -> list[str]:
    if organization_id is None:  # defensive: every connection has an organization
        users = get_user_model().objects.filter(is_superuser=True, is_active=True).exclude(email="")
        return sorted(set(users.values_list("email", flat=True)))
    return recipients_by_org([organization_id]).get(organization_id, [])


def rules_by_connection(connection_ids=None) -> dict[int, AlertRule]:
    qs = AlertRule.objects.all()
    if connection_ids is not None:
        qs = qs.filter(connection_id__in=list(connection_ids))
    return {r.connection_id: r for r in qs}


def rule_for(connection_id: int) -> AlertRule | None:
    return AlertRule.objects.filter(connection_id=connection_id).first()


def streak_threshold(kind: str, rule: AlertRule | None) -> int:
    if rule is not None and rule.failure_streak:
        return max(1, rule.failure_streak)
    return runpolicy.failure_streak(kind)


def schedule_interval(policy: RunPolicy, connection, tier: str = "") -> dt.timedelta | None:
    """How often the policy runs this connection's resources (None: not on a timer)."""
    s = policy.schedule
    if isinstance(s, Tiers):
        return runpolicy.tier_interval(policy, tier or s.default)
    if isinstance(s, Every):
        interval = import_string(s.interval_from)(connection) if s.interval_from else s.interval
        return interval if interval and interval.total_seconds() > 0 else None
    if isinstance(s, Cron):
        try:
            expr = runpolicy.cron_expression(s)
            first = next_cron_run(expr)
            return next_cron_run(expr, after=first) - first
        except Exception:  # an invalid expression is reported at registration, not here
            return None
    return None


def freshness_target(policy: RunPolicy, connection, rule: AlertRule | None, tier: str = "") -> dt.timedelta | None:
    """The rule's override, else the policy's ``freshness``, else three times the schedule interval."""
    if rule is not None and rule.freshness:
        return rule.freshness
    if policy.freshness:
        return policy.freshness
    interval = schedule_interval(policy, connection, tier)
    return interval * STALE_FACTOR if interval else None


def open_incidents():
    return Incident.objects.filter(state=IncidentState.OPEN)


def open_incident_counts() -> list[dict]:
    """Open incidents per (kind of connection, incident kind), for /metrics: one grouped query."""
    return list(open_incidents().values("connection__kind", "kind").annotate(n=Count("id")))


def kinds() -> list[str]:
    return list(KINDS)
