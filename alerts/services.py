"""Alerting for every connection (docs/alerts.md).

Two problems, one incident each while it lasts, per (connection, resource):
- **failure streak**: the run policy's consecutive failed runs (``RunSchedule.failures_in_row``, moved by the
  ``sync_run_finished`` receiver of sync.runpolicy) reached the threshold (the alert rule's, else the
  policy's ``failure_streak``);
- **stale**: no successful run (``SyncStatus.last_success_at``; never: since the connection was created)
  within the freshness target (the rule's, else the policy's ``freshness``, else 3x its schedule interval).

An incident opens at most once (a partial unique index on open rows) and sends one alert; it closes when the
problem clears and sends one recovery. Streaks are evaluated when a run ends (the signal) and, with
staleness, by the ``synchub:alerts`` schedule in bulk: a fixed number of queries for the whole fleet.
Sending happens in a django-q2 task (``alerts.tasks.notify``), claimed by compare-and-set so that a task run
twice sends once."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django_q.tasks import async_task

from core import clock
from core.redaction import redact
from sync import runpolicy
from sync.activity import activity_record
from sync.models import ActivityLevel, Lane, QueueState, RunSchedule, ScheduleState, SyncStatus
from sync.policy import Tiers
from sync.registry import connection_model

from . import notify, selectors
from .models import Incident, IncidentKind, IncidentState, Notification

log = logging.getLogger("synchub.alerts")

OPENED, RECOVERED = Notification.Event.OPENED, Notification.Event.RECOVERED


@dataclass(frozen=True)
class Finding:
    """A problem the evaluation sees now (whether or not an incident is open for it)."""

    connection_id: int
    organization_id: int
    resource: str
    kind: str
    failures_in_row: int = 0
    threshold: str = ""
    last_success_at: dt.datetime | None = None
    detail: str = ""

    @property
    def key(self) -> tuple[int, str, str]:
        return (self.connection_id, self.resource, self.kind)


def _enabled() -> bool:
    return bool(getattr(settings, "ALERTS_ENABLED", True))


def _fmt(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


# --- Sending (after the incident row is committed) ----------------------------------------------------------
def dispatch(incident_id: int, event: str) -> None:
    """Hand one notification to a worker. The ORM broker enqueues in the caller's transaction; another broker
    is sent after the commit, so the worker always finds the incident row."""
    from django_q.conf import Conf

    def send() -> None:
        async_task(
            "alerts.tasks.notify", incident_id, str(event), group="alerts", task_name=f"alert-{incident_id}-{event}"
        )

    if Conf.ORM or Conf.SYNC:
        send()
    else:
        transaction.on_commit(send)


def incident_notify(incident_id: int, event: str) -> str:
    """Send one incident's alert or recovery, once: the sent-at column is claimed by compare-and-set first
    (a task delivered twice, or dispatched by two evaluations, sends one message)."""
    column = "alert_sent_at" if event == OPENED else "recovery_sent_at"
    now = clock.now()
    if not Incident.objects.filter(pk=incident_id, **{f"{column}__isnull": True}).update(**{column: now}):
        return "already sent"
    incident = Incident.objects.select_related("connection", "organization").get(pk=incident_id)
    try:
        incident.connection.credentials  # noqa: B018  registers the connection's secrets with the redactor
    except Exception:  # undecryptable credentials must not stop the alert
        pass
    subject, text = notify.render(incident, event)
    rule = selectors.rule_for(incident.connection_id)
    results = []
    if rule is None or rule.email_enabled:
        results.append(notify.send_email(incident, event, subject, text))
    if rule is not None and rule.has_webhook:
        try:
            url = rule.webhook_url
        except Exception as exc:  # a rotated-out key: recorded, not raised
            results.append(notify._record(incident, event, "webhook", "failed", error=exc.__class__.__name__))
        else:
            results.append(notify.send_webhook(incident, event, url, f"*{subject}*\n{text}"))
    outcome = {n.channel: n.status for n in results}
    activity_record(
        event="alert.opened" if event == OPENED else "alert.recovered",
        level=ActivityLevel.WARNING if event == OPENED else ActivityLevel.INFO,
        organization=incident.organization,
        connection=incident.connection,
        message=subject,
        data={"incident": incident.pk, "kind": incident.kind, "resource": incident.resource, "channels": outcome},
    )
    return ", ".join(f"{k} {v}" for k, v in outcome.items()) or "no channel"


# --- Opening and closing ------------------------------------------------------------------------------------
def _new(finding: Finding, now: dt.datetime) -> Incident:
    return Incident(
        organization_id=finding.organization_id,
        connection_id=finding.connection_id,
        resource=finding.resource,
        kind=finding.kind,
        state=IncidentState.OPEN,
        opened_at=now,
        failures_in_row=finding.failures_in_row,
        threshold=finding.threshold[:64],
        last_success_at=finding.last_success_at,
        detail=redact(finding.detail)[:2000],
    )


def incident_open(finding: Finding, *, now: dt.datetime | None = None) -> Incident | None:
    """Open an incident and send its alert; None when one is already open (nothing is sent again)."""
    try:
        with transaction.atomic():
            incident = _new(finding, now or clock.now())
            incident.save()
    except IntegrityError:  # the partial unique index: an incident for this is already open
        return None
    dispatch(incident.pk, OPENED)
    return incident


def incident_close(incident_id: int, *, now: dt.datetime | None = None, notify_recovery: bool = True) -> bool:
    """Close an open incident (compare-and-set: one closer wins) and send its recovery if its alert went out."""
    now = now or clock.now()
    if not Incident.objects.filter(pk=incident_id, state=IncidentState.OPEN).update(
        state=IncidentState.CLOSED, closed_at=now
    ):
        return False
    if notify_recovery and Incident.objects.filter(pk=incident_id, alert_sent_at__isnull=False).exists():
        dispatch(incident_id, RECOVERED)
    return True


def _streak_finding(connection, resource: str, failures: int, threshold: int, error: str) -> Finding:
    return Finding(
        connection_id=connection.pk,
        organization_id=connection.organization_id,
        resource=resource,
        kind=IncidentKind.FAILURE_STREAK,
        failures_in_row=failures,
        threshold=f"{threshold} failed runs in a row",
        detail=error,
    )


# --- When a run ends (sync_run_finished) ------------------------------------------------------------------
def on_run_finished(sender, queue, succeeded: bool, **kwargs) -> None:
    """A success closes the resource's open incidents (streak and stale, with a recovery each); a failure
    that completes a streak opens one. Never raises."""
    if not _enabled() or queue.lane != Lane.RUN or queue.state == QueueState.CANCELLED:
        return
    try:
        run_finished(queue.connection, queue.resource, succeeded=succeeded)
    except Exception:
        log.exception("alerts: evaluating the end of run %s failed", queue.pk)


def run_finished(connection, resource: str, *, succeeded: bool) -> Incident | None:
    now = clock.now()
    if succeeded:
        for pk in (
            selectors.open_incidents().filter(connection=connection, resource=resource).values_list("pk", flat=True)
        ):
            incident_close(pk, now=now)
        return None
    rule = selectors.rule_for(connection.pk)
    if (rule is not None and not rule.enabled) or not connection.is_active:
        return None
    unit = (
        RunSchedule.objects.filter(connection=connection, resource=resource)
        .values("failures_in_row", "last_error")
        .first()
    )
    threshold = selectors.streak_threshold(connection.kind, rule)
    if unit is None or unit["failures_in_row"] < threshold:
        return None
    return incident_open(
        _streak_finding(connection, resource, unit["failures_in_row"], threshold, unit["last_error"]), now=now
    )


# --- The scheduled evaluation, in bulk ----------------------------------------------------------------------
def findings(now: dt.datetime) -> tuple[dict[tuple, Finding], dict[int, object], dict[int, object]]:
    """Every current problem of every active connection, from four queries (connections, rules, run-policy
    units, statuses) whatever the fleet size. Returns (findings by key, connections, rules)."""
    Connection = connection_model()
    kinds = selectors.kinds()
    connections = {
        c.pk: c
        for c in Connection.objects.filter(is_active=True, kind__in=kinds).only(
            "id", "kind", "organization_id", "name", "config", "created_at", "is_active", "needs_reauth"
        )
    }
    rules = selectors.rules_by_connection()
    units: dict[tuple[int, str], tuple] = {}
    for conn_id, resource, tier, state, failures, error in RunSchedule.objects.filter(
        connection__is_active=True
    ).values_list("connection_id", "resource", "tier", "state", "failures_in_row", "last_error"):
        units[(conn_id, resource)] = (tier, state, failures, error)
    successes = {
        (conn_id, resource): last
        for conn_id, resource, last in SyncStatus.objects.filter(connection__is_active=True).values_list(
            "connection_id", "resource", "last_success_at"
        )
    }
    found: dict[tuple, Finding] = {}
    thresholds: dict[str, int] = {}
    policies = {}
    for (conn_id, resource), (_tier, _state, failures, error) in units.items():
        conn = connections.get(conn_id)
        if conn is None or not resource:  # a tiered connection's whole unit: its resources carry the streak
            continue
        rule = rules.get(conn_id)
        if rule is not None and rule.failure_streak:
            threshold = selectors.streak_threshold(conn.kind, rule)
        else:
            threshold = thresholds.setdefault(conn.kind, selectors.streak_threshold(conn.kind, None))
        if failures >= threshold:
            f = _streak_finding(conn, resource, failures, threshold, error)
            found[f.key] = f
    for conn in connections.values():
        try:
            policy = policies.setdefault(conn.kind, runpolicy.policy_of(conn.kind))
        except Exception:  # an unknown or broken kind: reported where it is loaded, skipped here
            log.warning("alerts: no policy for kind %s", conn.kind)
            continue
        if policy.schedule is not None and not runpolicy.policy_enabled(policy):
            continue  # its schedules are off on purpose (a feature flag): nothing is expected to run
        tiered = isinstance(policy.schedule, Tiers)
        whole = units.get((conn.pk, runpolicy.WHOLE))
        if tiered and whole is not None and whole[1] == ScheduleState.PAUSED:
            continue
        target = selectors.freshness_target(policy, conn, rules.get(conn.pk), whole[0] if (tiered and whole) else "")
        if target is None:
            continue
        for resource in runpolicy.resource_order(conn.kind):
            unit = units.get((conn.pk, resource))
            if unit is not None and unit[1] == ScheduleState.PAUSED:  # paused by an operator
                continue
            last = successes.get((conn.pk, resource))
            if now - (last or conn.created_at) < target:
                continue
            f = Finding(
                connection_id=conn.pk,
                organization_id=conn.organization_id,
                resource=resource,
                kind=IncidentKind.STALE,
                threshold=f"freshness {_fmt(target)}",
                last_success_at=last,
                detail=f"no successful sync since {last:%Y-%m-%d %H:%M} UTC" if last else "never synced successfully",
            )
            found[f.key] = f
    return found, connections, rules


def evaluate(*, now: dt.datetime | None = None) -> dict:
    """Open an incident for every new problem and close those that cleared; alerts and recoveries go to
    workers. Query count is constant in the number of connections (plus one per incident that changes)."""
    if not _enabled():
        return {"skipped": "ALERTS_ENABLED is off"}
    now = now or clock.now()
    found, connections, rules = findings(now)
    open_rows = list(selectors.open_incidents().values_list("pk", "connection_id", "resource", "kind"))
    open_keys = {(c, r, k): pk for pk, c, r, k in open_rows}
    closed = 0
    for key, pk in open_keys.items():
        if key in found:
            continue
        # The connection went inactive: close without a recovery notice (it did not recover).
        closed += incident_close(pk, now=now, notify_recovery=key[0] in connections)
    new = [
        _new(f, now)
        for key, f in found.items()
        if key not in open_keys and (rules.get(f.connection_id) is None or rules[f.connection_id].enabled)
    ]
    Incident.objects.bulk_create(new, ignore_conflicts=True, batch_size=500)
    # Alerts not sent yet: the ones just opened, and any whose task a broker lost (the claim makes a repeat
    # harmless). One query.
    pending = list(
        selectors.open_incidents().filter(alert_sent_at__isnull=True).values_list("pk", flat=True).order_by("pk")
    )
    for pk in pending:
        dispatch(pk, OPENED)
    result = {"problems": len(found), "opened": len(new), "closed": closed, "dispatched": len(pending)}
    log.info("alerts evaluated", extra={"event": "alerts_evaluated", **result})
    return result
