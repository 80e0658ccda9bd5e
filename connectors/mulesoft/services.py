"""Loyalty-tier refresh: request (throttled enqueue), run (worker body), refresh-now (admin)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q
from django_q.tasks import async_task

from connectors.base import FetchContext, MappingError, UpstreamError
from connectors.models import Connection
from core import clock
from core.redaction import redact
from customers.models import LoyaltyTier
from sync.activity import activity_record
from sync.models import ActivityLevel, Organization
from sync.selectors import setting_get
from sync.services import connection_record_result

from . import conf
from .models import LoyaltyRefreshState, Outcome

log = logging.getLogger("synchub.mulesoft")

TASK = "connectors.mulesoft.tasks.refresh_loyalty_tiers"
CONNECTION_NAME = "MuleSoft loyalty"


@dataclass(frozen=True)
class RefreshResult:
    outcome: str
    tier_count: int | None = None
    status: int | None = None
    message: str = ""


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


def _claim(organization: Organization, *, force: bool) -> bool:
    """Atomically take this interval's refresh slot: a conditional UPDATE, so however many processes
    open the list at once, exactly one wins per interval (and none during a 429 window)."""
    _state_row(organization.pk)
    now = clock.now()
    qs = LoyaltyRefreshState.objects.filter(organization_id=organization.pk).filter(
        Q(next_allowed_at__isnull=True) | Q(next_allowed_at__lte=now)
    )
    if not force:
        qs = qs.filter(
            Q(last_requested_at__isnull=True) | Q(last_requested_at__lte=now - refresh_interval(organization))
        )
    return qs.update(last_requested_at=now) == 1


def loyalty_refresh_request(organization_ids: Iterable[int], *, origin: str = "customer_list") -> list[int]:
    """Enqueue a refresh for each organization whose throttle slot is free. Cheap (a few small queries and
    one OrmQ INSERT each); never calls MuleSoft. ``sync=False`` keeps it out of the caller's process even
    when Q_SYNC runs tasks inline. Returns the organization ids enqueued."""
    enqueued = []
    for org in Organization.objects.filter(pk__in=list(organization_ids)):
        if _claim(org, force=False):
            async_task(TASK, org.pk, origin, sync=False, task_name=f"loyalty-refresh-{org.pk}")
            enqueued.append(org.pk)
    return enqueued


def loyalty_refresh_request_safe(organization_ids: Iterable[int], *, origin: str = "customer_list") -> None:
    """For the request_finished receiver: the response is already sent, so log instead of raising."""
    try:
        loyalty_refresh_request(organization_ids, origin=origin)
    except Exception:
        log.exception("could not enqueue the loyalty-tier refresh")


def loyalty_refresh_now(organization: Organization, actor=None) -> dict:
    """Admin/API "refresh now": skips the interval throttle but still honours a 429 window."""
    if not _claim(organization, force=True):
        state = LoyaltyRefreshState.objects.get(organization=organization)
        msg = f"MuleSoft rate limit: next refresh allowed at {state.next_allowed_at.isoformat()}"
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
    task_id = async_task(TASK, organization.pk, "manual", task_name=f"loyalty-refresh-{organization.pk}")
    return {"enqueued": True, "task_id": task_id}


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


def loyalty_refresh(organization_id: int, *, origin: str = "customer_list", actor=None) -> RefreshResult:
    """The worker body. Records exactly one of the four outcomes (log line + activity + state row)."""
    from .connector import connector

    organization = Organization.objects.get(pk=organization_id)
    _state_row(organization.pk)
    started = clock.now()
    LoyaltyRefreshState.objects.filter(organization=organization).update(last_started_at=started)
    endpoint = setting_get(conf.ENDPOINT_SETTING, organization=organization, default="")
    if not isinstance(endpoint, str) or not endpoint.strip().startswith(("http://", "https://")):
        problem = "is not configured" if not endpoint else "is not an http(s) URL"
        result = RefreshResult(Outcome.SKIPPED, message=f"{conf.ENDPOINT_SETTING} {problem}")
        return _finish(organization, None, result, origin=origin, actor=actor)
    connection = loyalty_connection(organization, endpoint.strip().rstrip("/"))
    log.info("Syncing loyalty tiers from MuleSoft: %s", redact(connection.base_url))  # seed 000's start line
    client = connector.client(connection)
    try:
        page = connector.resource("loyalty_tiers").fetch_page(
            FetchContext(client=client, cursor="", token=None, full_scan=True)
        )
    except UpstreamError as exc:
        if exc.status == 429 and exc.wait:
            LoyaltyRefreshState.objects.filter(organization=organization).update(
                next_allowed_at=clock.now() + dt.timedelta(seconds=exc.wait)
            )
        outcome = Outcome.HTTP_ERROR if exc.status else Outcome.NETWORK_ERROR
        result = RefreshResult(outcome, status=exc.status, message=exc.message)
        connection_record_result(connection=connection, ok=False, error=exc.message)
        return _finish(organization, connection, result, origin=origin, actor=actor)
    finally:
        client.close()
    count, rejected = tiers_store(connection, page.records)
    connection_record_result(connection=connection, ok=True)
    note = f"; {len(rejected)} tier(s) rejected: {'; '.join(rejected[:3])}" if rejected else ""
    result = RefreshResult(Outcome.SUCCESS, tier_count=count, message=f"{count} loyalty tier(s) refreshed{note}")
    return _finish(organization, connection, result, origin=origin, actor=actor)


def tiers_store(connection: Connection, records: list[dict]) -> tuple[int, list[str]]:
    """Bulk upsert by (connection, external_id); tiers MuleSoft no longer lists are marked deleted."""
    from .resources import LOYALTY_TIERS

    now = clock.now()
    rows, rejected = {}, []
    for record in records:
        try:
            external_id = LOYALTY_TIERS.external_id(record)
            fields = LOYALTY_TIERS.map(record)
        except MappingError as exc:
            rejected.append(str(exc))
            continue
        extra = {k: v for k, v in record.items() if k not in ("id", "code", "name", "rank", "minPoints", "benefits")}
        rows[external_id] = LoyaltyTier(
            organization_id=connection.organization_id,
            connection=connection,
            external_id=external_id,
            synced_at=now,
            deleted_at=None,
            extra=extra,
            **fields,
        )
    with transaction.atomic():
        if rows:
            LoyaltyTier.objects.bulk_create(
                list(rows.values()),
                update_conflicts=True,
                unique_fields=["connection", "external_id"],
                update_fields=["code", "name", "rank", "min_points", "benefits", "synced_at", "deleted_at", "extra"],
            )
        LoyaltyTier.objects.filter(connection=connection, deleted_at__isnull=True).exclude(
            external_id__in=list(rows)
        ).update(deleted_at=now)
    return len(rows), rejected


_EVENTS = {
    Outcome.SKIPPED: ("loyalty.refresh.skipped", ActivityLevel.WARNING),
    Outcome.HTTP_ERROR: ("loyalty.refresh.http_error", ActivityLevel.ERROR),
    Outcome.NETWORK_ERROR: ("loyalty.refresh.network_error", ActivityLevel.ERROR),
    Outcome.SUCCESS: ("loyalty.refresh.succeeded", ActivityLevel.INFO),
}


def _finish(organization, connection, result: RefreshResult, *, origin: str, actor) -> RefreshResult:
    now = clock.now()
    message = redact(result.message)[:2000]
    updates = {
        "last_finished_at": now,
        "last_outcome": result.outcome,
        "last_status_code": result.status,
        "last_message": message,
        "tier_count": result.tier_count,
    }
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
        actor=actor,
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
    return result
