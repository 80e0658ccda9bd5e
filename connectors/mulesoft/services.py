"""Loyalty tiers through the engine: one path, the same rows, whoever asks (the customer list, "Refresh now",
the API, a schedule). A refresh is an ordinary engine run of ``loyalty_tiers`` on the organization's MuleSoft
Connection (written by the TableSink into ``customers.LoyaltyTier``); its throttle is the connector's
RunPolicy. What stays here: the Connection that follows the endpoint setting, MuleSoft's 429 window, and
``record_outcome``, which turns every settled run into one of the four logged outcomes."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from connectors.models import Connection
from core import clock
from core.redaction import redact
from sync import refresh as sync_refresh
from sync import services as sync_services
from sync.activity import activity_record
from sync.models import ActivityLevel, Organization, Origin, QueueState, SyncActivity
from sync.selectors import setting_get

from . import conf
from .models import LoyaltyRefreshState, Outcome

log = logging.getLogger("synchub.mulesoft")

RESOURCE = "loyalty_tiers"
CONNECTION_NAME = "MuleSoft loyalty"


@dataclass(frozen=True)
class RefreshResult:
    outcome: str
    tier_count: int | None = None
    status: int | None = None
    message: str = ""
    queue_id: int | None = None


def refresh_interval(organization) -> dt.timedelta:
    value = setting_get(conf.INTERVAL_SETTING, organization=organization, default=conf.DEFAULT_REFRESH_INTERVAL_SECONDS)
    try:
        return dt.timedelta(seconds=max(0, int(value)))
    except (TypeError, ValueError):
        return dt.timedelta(seconds=conf.DEFAULT_REFRESH_INTERVAL_SECONDS)


def _state_row(organization_id: int) -> None:
    if not LoyaltyRefreshState.objects.filter(organization_id=organization_id).exists():
        try:
            with transaction.atomic():
                LoyaltyRefreshState.objects.create(organization_id=organization_id)
        except IntegrityError:  # a concurrent request created it
            pass


# --- The Connection follows the endpoint setting ---------------------------------------------------------
def endpoint_problem(endpoint) -> str:
    if not endpoint:
        return f"{conf.ENDPOINT_SETTING} is not configured"
    if not isinstance(endpoint, str) or not endpoint.strip().startswith(("http://", "https://")):
        return f"{conf.ENDPOINT_SETTING} is not an http(s) URL"
    return ""


def loyalty_connection(organization: Organization, endpoint: str) -> Connection:
    """The per-organization MuleSoft connection that owns the stored tiers; its base URL follows the setting."""
    conn = Connection.objects.filter(organization=organization, kind="mulesoft").order_by("id").first()
    if conn is None:
        conn = Connection(organization=organization, kind="mulesoft", name=CONNECTION_NAME, base_url=endpoint)
        conn.save()
    elif conn.base_url != endpoint:
        conn.base_url = endpoint
        conn.save(update_fields=["base_url", "updated_at"])
    return conn


def configured_connection(organization: Organization) -> Connection | None:
    """The organization's MuleSoft connection, in step with the endpoint setting; None when not configured."""
    endpoint = setting_get(conf.ENDPOINT_SETTING, organization=organization, default="")
    if endpoint_problem(endpoint):
        return None
    return loyalty_connection(organization, endpoint.strip().rstrip("/"))


def sync_connections_to_setting(sender, instance, **kwargs) -> None:
    """post_save of SystemSetting: setting the endpoint (for one organization, or globally) creates or
    re-points the MuleSoft connections, so automatic refreshes (the customer list) find them."""
    if instance.key != conf.ENDPOINT_SETTING:
        return
    orgs = (
        Organization.objects.filter(pk=instance.organization_id)
        if instance.organization_id
        else Organization.objects.all()
    )
    for org in orgs:
        configured_connection(org)


# --- Starting refreshes ----------------------------------------------------------------------------------
def loyalty_refresh_request(organization_ids: Iterable[int], *, origin: str = Origin.LOGIN) -> list[int]:
    """Throttled runs for these organizations, handed to workers (never run here). Returns the organization
    ids whose run was started (a throttled or running one adds none)."""
    queue_ids = sync_refresh.sync_request(
        kind="mulesoft", resource=RESOURCE, organization_ids=organization_ids, origin=origin
    )
    from sync.models import SyncQueue

    return list(SyncQueue.objects.filter(pk__in=queue_ids).order_by("id").values_list("organization_id", flat=True))


def rate_limit_window(organization) -> dt.datetime | None:
    """When MuleSoft said (429) we may call again, if that is still ahead."""
    state = LoyaltyRefreshState.objects.filter(organization=organization).first()
    if state and state.next_allowed_at and state.next_allowed_at > clock.now():
        return state.next_allowed_at
    return None


def loyalty_refresh_now(organization: Organization, actor=None) -> dict:
    """Admin/API "Refresh now": a forced run (past the throttle) in a worker, but never inside MuleSoft's
    429 window."""
    until = rate_limit_window(organization)
    if until is not None:
        msg = f"MuleSoft rate limit: next refresh allowed at {until.isoformat()}"
        activity_record(
            event="loyalty.refresh.deferred",
            organization=organization,
            actor=actor,
            level=ActivityLevel.WARNING,
            message=msg,
        )
        return {"enqueued": False, "reason": msg}
    activity_record(
        event="loyalty.refresh.requested",
        organization=organization,
        actor=actor,
        message="loyalty-tier refresh requested",
    )
    connection = configured_connection(organization)
    if connection is None:
        result = _skipped(organization, origin=Origin.MANUAL, actor=actor)
        return {"enqueued": False, "reason": result.message}
    try:
        started = sync_services.sync_start(
            connection=connection, resource=RESOURCE, origin=Origin.MANUAL, actor=actor, force=True
        )
    except sync_services.SyncServiceError as exc:
        return {"enqueued": False, "reason": str(exc)}
    return {"enqueued": True, "queue_id": started.queue.pk, "result": started.reason}


def loyalty_refresh(organization_id: int, *, origin: str = Origin.MANUAL, actor=None) -> RefreshResult:
    """Refresh one organization now, in this process (manage.py, tests, the demo): an engine run, forced
    past the throttle. Returns the recorded outcome."""
    from sync.tasks import run_queue

    organization = Organization.objects.get(pk=organization_id)
    connection = configured_connection(organization)
    if connection is None:
        return _skipped(organization, origin=origin, actor=actor)
    started = sync_services.sync_start(
        connection=connection, resource=RESOURCE, origin=origin, actor=actor, enqueue=False, force=True
    )
    run_queue(started.queue.pk)
    started.queue.refresh_from_db()
    return record_outcome(connection, started.queue)


# --- Outcomes ---------------------------------------------------------------------------------------------
_EVENTS = {
    Outcome.SKIPPED: ("loyalty.refresh.skipped", ActivityLevel.WARNING),
    Outcome.HTTP_ERROR: ("loyalty.refresh.http_error", ActivityLevel.ERROR),
    Outcome.NETWORK_ERROR: ("loyalty.refresh.network_error", ActivityLevel.ERROR),
    Outcome.SUCCESS: ("loyalty.refresh.succeeded", ActivityLevel.INFO),
}


def _skipped(organization, *, origin: str, actor) -> RefreshResult:
    endpoint = setting_get(conf.ENDPOINT_SETTING, organization=organization, default="")
    result = RefreshResult(Outcome.SKIPPED, message=endpoint_problem(endpoint) or "not configured")
    return _finish(organization, None, result, origin=origin, actor=actor, queue=None)


def record_outcome(connection, queue, skip_reason: str = "") -> RefreshResult | None:
    """The sink's outcome hook (sync.sinks): one of the four outcomes per settled run, recorded once."""
    if queue is None:
        result = RefreshResult(Outcome.SKIPPED, message=skip_reason)
        return _finish(connection.organization, connection, result, origin="", actor=None, queue=None)
    if queue.state == QueueState.CANCELLED:
        return None
    done = SyncActivity.objects.filter(queue=queue, event__startswith="loyalty.refresh.").first()
    if done is not None:  # already recorded (the runner and the finished signal both call this)
        return RefreshResult(
            done.data.get("outcome", ""), done.data.get("tier_count"), done.data.get("status"), done.message, queue.pk
        )
    if queue.state == QueueState.DONE:
        tiers = queue.done_count
        result = RefreshResult(
            Outcome.SUCCESS, tier_count=tiers, message=f"{tiers} loyalty tier(s) refreshed", queue_id=queue.pk
        )
    else:
        failure = SyncActivity.objects.filter(queue=queue, event="run.failed").order_by("-id").first()
        data = failure.data if failure is not None else {}
        status = data.get("status")
        if status == 429 and data.get("wait"):
            _state_row(queue.organization_id)
            LoyaltyRefreshState.objects.filter(organization_id=queue.organization_id).update(
                next_allowed_at=clock.now() + dt.timedelta(seconds=float(data["wait"]))
            )
        message = queue.fetch_error or queue.last_error or f"run #{queue.pk} ended {queue.state}"
        outcome = Outcome.HTTP_ERROR if status else Outcome.NETWORK_ERROR
        if failure is None:  # the fetch went through but records were rejected: MuleSoft answered
            outcome = Outcome.HTTP_ERROR
        result = RefreshResult(outcome, status=status, message=message, queue_id=queue.pk)
    actor = queue.created_by if queue.created_by_id else None
    return _finish(queue.organization, connection, result, origin=queue.origin, actor=actor, queue=queue)


def _finish(organization, connection, result: RefreshResult, *, origin: str, actor, queue) -> RefreshResult:
    _state_row(organization.pk)
    now = clock.now()
    message = redact(result.message)[:2000]
    updates = {
        "last_finished_at": now,
        "last_outcome": result.outcome,
        "last_status_code": result.status,
        "last_message": message,
        "tier_count": result.tier_count,
    }
    if queue is not None:
        updates["last_requested_at"] = queue.started_at
        updates["last_started_at"] = queue.started_at
    if result.outcome == Outcome.SUCCESS:
        updates["last_success_at"] = now
    LoyaltyRefreshState.objects.filter(organization=organization).update(**updates)
    event, level = _EVENTS[Outcome(result.outcome)]
    data = {"outcome": str(result.outcome), "origin": origin}
    if result.status is not None:
        data["status"] = result.status
    if result.tier_count is not None:
        data["tier_count"] = result.tier_count
    activity_record(
        event=event,
        level=level,
        organization=organization,
        connection=connection,
        queue=queue,
        actor=actor if getattr(actor, "pk", None) else None,
        message=message,
        data=data,
    )
    log.log(
        logging.INFO if result.outcome == Outcome.SUCCESS else logging.WARNING,
        "loyalty_refresh organization=%s outcome=%s status=%s tiers=%s origin=%s message=%s",
        organization.pk,
        result.outcome,
        result.status,
        result.tier_count,
        origin,
        message,
    )
    return RefreshResult(result.outcome, result.tier_count, result.status, message, result.queue_id)
