"""The MDM -> S3 export (one run), its alerting, and the schedule's pause/resume/show."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction

from connectors.base import FetchContext, MappingError, UpstreamError
from connectors.models import Connection
from core import clock
from core.redaction import redact
from sync.activity import activity_record
from sync.models import ActivityLevel, Membership, Organization
from sync.selectors import setting_get
from sync.services import connection_record_result, setting_set

from . import conf, readcache, storage
from .models import ExportRun, RunStatus

log = logging.getLogger("synchub.mdm")
FINAL = (RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.SKIPPED)


class ExportConfigError(Exception):
    pass


# --- Configuration --------------------------------------------------------------------------------------
def export_connection() -> Connection:
    """The MDM account to read: the first active Connection of kind "mdm", else one built (unsaved) from
    MDM_BASE_URL / MDM_API_KEY / MDM_ORGANIZATION."""
    conn = Connection.objects.filter(kind="mdm", is_active=True).select_related("organization").order_by("id").first()
    if conn is not None:
        return conn
    if not conf.MDM_BASE_URL:
        raise ExportConfigError("no MDM connection and MDM_BASE_URL is not set")
    org = Organization.objects.filter(slug=conf.MDM_ORGANIZATION).first() if conf.MDM_ORGANIZATION else None
    conn = Connection(kind="mdm", name="MDM (environment)", base_url=conf.MDM_BASE_URL, organization=org)
    conn.credentials = {"api_key": conf.MDM_API_KEY} if conf.MDM_API_KEY else {}
    return conn


def export_target(connection: Connection | None) -> storage.Target:
    cfg = (connection.config or {}) if connection is not None else {}
    return storage.Target(cfg.get("s3_bucket") or conf.MDM_S3_BUCKET, cfg.get("s3_key") or conf.MDM_S3_KEY)


# --- One run --------------------------------------------------------------------------------------------
def mdm_export_enqueue(*, actor=None, origin: str = "api") -> ExportRun:
    """Create a queued run row and hand it to a worker (202 + poll the row)."""
    from django_q.tasks import async_task

    run = ExportRun.objects.create(origin=origin, actor=actor if getattr(actor, "pk", None) else None)
    transaction.on_commit(lambda: async_task("connectors.mdm.tasks.mdm_export_task", run.pk))
    return run


def mdm_export_run(*, actor=None, origin: str = "manual", run: ExportRun | None = None) -> ExportRun:
    """Run one export now. Never raises: every outcome is a row, an activity and a log line."""
    run = run or ExportRun.objects.create(origin=origin, actor=actor if getattr(actor, "pk", None) else None)
    actor = actor or run.actor
    started = clock.now()
    t0 = time.monotonic()
    run.started_at = started
    if not settings.MDM_INTEGRATION_ENABLED:
        return _skip(run, "MDM integration is disabled (MDM_INTEGRATION_ENABLED=false)", t0, actor)
    stale_before = started - dt.timedelta(seconds=conf.MDM_RUN_STALE_SECONDS)
    # A run whose worker died stays "running"; close it so history and the failure streak stay truthful.
    ExportRun.objects.filter(status=RunStatus.RUNNING, started_at__lt=stale_before).exclude(pk=run.pk).update(
        status=RunStatus.FAILED,
        finished_at=started,
        error_stage="worker",
        error_type="WorkerLost",
        error_message=f"no result after {conf.MDM_RUN_STALE_SECONDS}s; the worker probably died",
    )
    busy = ExportRun.objects.filter(status=RunStatus.RUNNING, started_at__gte=stale_before)
    if busy.exclude(pk=run.pk).exists():
        return _skip(run, "another export is running", t0, actor)
    run.status = RunStatus.RUNNING
    run.save(update_fields=["status", "started_at"])
    try:
        connection = export_connection()
    except ExportConfigError as exc:
        return _fail(run, "config", exc.__class__.__name__, str(exc), t0, actor)
    run.organization = connection.organization if connection.organization_id else None
    run.connection = connection if connection.pk else None
    target = export_target(connection)
    run.s3_bucket, run.s3_key = target.bucket, target.key

    # 1. MDM. Any failure here returns before S3 is touched, so the object and every cache stay as they are.
    try:
        items, rejected = fetch_items(connection)
    except UpstreamError as exc:
        _record_connection(connection, ok=False, error=exc.message)
        return _fail(run, "mdm", exc.__class__.__name__, exc.message, t0, actor)
    _record_connection(connection, ok=True)
    run.item_count, run.rejected_count = len(items), len(rejected)

    # 2. S3. A failed write leaves the old object in place and the caches valid (no version bump).
    document = {"generated_at": clock.now().isoformat(), "count": len(items), "items": items}
    try:
        etag = storage.put_json(target, document)
    except storage.S3Error as exc:
        return _fail(run, "s3", exc.error_type, str(exc), t0, actor)
    run.etag = etag

    # 3. Invalidate the read path everywhere (see readcache).
    readcache.bump_version(f"{run.pk}:{etag}")
    return _succeed(run, t0, actor)


def fetch_items(connection: Connection) -> tuple[list[dict], list[str]]:
    from .connector import connector

    resource = connector.resource("ineligible_items")
    client = connector.client(connection)
    items: dict[str, dict] = {}
    rejected: list[str] = []
    try:
        for page in resource.iter_pages(FetchContext(client=client, cursor="", token=None, full_scan=True)):
            for record in page.records:
                try:
                    item = resource.map(record)
                except MappingError as exc:
                    rejected.append(str(exc))
                    continue
                items[item["sku"]] = item  # dedupe by SKU: pages can overlap while MDM changes
    finally:
        client.close()
    return sorted(items.values(), key=lambda i: i["sku"]), rejected


def _record_connection(connection: Connection, *, ok: bool, error: str = "") -> None:
    if connection.pk:
        connection_record_result(connection=connection, ok=ok, error=error)


def _duration(t0: float) -> int:
    return int((time.monotonic() - t0) * 1000)


def _payload(run: ExportRun) -> dict:
    """The structured record every run leaves (log line and activity data)."""
    data = {
        "run_id": run.pk,
        "success": run.status == RunStatus.SUCCESS,
        "status": run.status,
        "timestamp": (run.finished_at or clock.now()).isoformat(),
        "duration_ms": run.duration_ms,
        "item_count": run.item_count,
        "s3_location": run.s3_location,
        "etag": run.etag,
        "origin": run.origin,
    }
    if run.status == RunStatus.FAILED:
        data.update(
            error_stage=run.error_stage,
            error_type=run.error_type,
            error_message=run.error_message,
            consecutive_failures=run.consecutive_failures,
        )
    if run.status == RunStatus.SKIPPED:
        data["reason"] = run.skip_reason
    return data


def _finish(run: ExportRun, t0: float, actor, *, event: str, level: str, message: str) -> ExportRun:
    run.finished_at = clock.now()
    run.duration_ms = _duration(t0)
    run.save()
    data = _payload(run)
    log.log(
        logging.ERROR if level == ActivityLevel.ERROR else logging.INFO,
        "mdm_export %s",
        json.dumps(data, sort_keys=True, default=str),
        extra={"event": "mdm_export", **data},  # top-level fields in JSON logs (LOG_FORMAT=json)
    )
    activity_record(
        event=event,
        level=level,
        organization=run.organization,
        connection=run.connection,
        actor=actor,
        message=message,
        data=data,
    )
    return run


def _succeed(run: ExportRun, t0: float, actor) -> ExportRun:
    run.status = RunStatus.SUCCESS
    run.consecutive_failures = 0
    return _finish(
        run,
        t0,
        actor,
        event="mdm.export.succeeded",
        level=ActivityLevel.INFO,
        message=f"exported {run.item_count} ineligible item(s) to {run.s3_location} (ETag {run.etag})",
    )


def _skip(run: ExportRun, reason: str, t0: float, actor) -> ExportRun:
    run.status = RunStatus.SKIPPED
    run.skip_reason = reason
    return _finish(
        run, t0, actor, event="mdm.export.skipped", level=ActivityLevel.WARNING, message=f"MDM export skipped: {reason}"
    )


def _fail(run: ExportRun, stage: str, error_type: str, message: str, t0: float, actor) -> ExportRun:
    run.status = RunStatus.FAILED
    run.error_stage, run.error_type, run.error_message = stage, error_type[:255], redact(message)[:4000]
    run.consecutive_failures = _consecutive_failures(run) + 1
    run = _finish(
        run,
        t0,
        actor,
        event="mdm.export.failed",
        level=ActivityLevel.ERROR,
        message=f"MDM export failed at {stage}: {error_type}: {run.error_message}",
    )
    if run.consecutive_failures == conf.MDM_ALERT_AFTER_FAILURES:
        _alert(run)
    return run


def _consecutive_failures(run: ExportRun) -> int:
    """Failures since the last success (skipped runs neither count nor break the streak)."""
    previous = ExportRun.objects.filter(status__in=[RunStatus.SUCCESS, RunStatus.FAILED]).exclude(pk=run.pk)
    last = previous.order_by("-created_at", "-id").first()
    return last.consecutive_failures if last and last.status == RunStatus.FAILED else 0


def alert_recipients(organization: Organization | None) -> list[str]:
    if organization is not None:
        qs = Membership.objects.filter(
            organization=organization, role=Membership.Role.ADMIN, user__is_active=True
        ).exclude(user__email="")
        return sorted(set(qs.values_list("user__email", flat=True)))
    users = get_user_model().objects.filter(is_superuser=True, is_active=True).exclude(email="")
    return sorted(set(users.values_list("email", flat=True)))


def _alert(run: ExportRun) -> None:
    recipients = alert_recipients(run.organization)
    if not recipients:
        log.warning("mdm export: %s consecutive failures but nobody to alert", run.consecutive_failures)
        return
    subject = f"[SyncHub] MDM export failed {run.consecutive_failures} times in a row"
    body = (
        f"The ineligible-items export from MDM to {run.s3_location or 'S3'} has failed "
        f"{run.consecutive_failures} consecutive times.\n\nLast run: #{run.pk} at {run.finished_at.isoformat()}\n"
        f"Stage: {run.error_stage}\nError: {run.error_type}: {run.error_message}\n\n"
        "The previous export in S3 is untouched and readers keep the last good copy."
    )
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception as exc:  # a broken mail server must not turn a recorded failure into a crash
        log.error("mdm export alert could not be sent: %s", exc.__class__.__name__)
        return
    ExportRun.objects.filter(pk=run.pk).update(alert_sent=True)
    run.alert_sent = True
    activity_record(
        event="mdm.export.alert_sent",
        level=ActivityLevel.WARNING,
        organization=run.organization,
        message=f"alert sent to {len(recipients)} admin(s) after {run.consecutive_failures} failures",
        data={"run_id": run.pk, "recipients": len(recipients)},
    )


# --- Schedule -------------------------------------------------------------------------------------------
def schedule_show() -> dict:
    from django_q.models import Schedule

    obj = Schedule.objects.filter(name=conf.SCHEDULE_NAME).first()
    paused = bool(setting_get(conf.PAUSED_SETTING, default=False))
    return {
        "name": conf.SCHEDULE_NAME,
        "enabled": settings.INELIGIBLE_ITEMS_SYNC_ENABLED,
        "cron": settings.INELIGIBLE_ITEMS_SYNC_CRON_SCHEDULE,
        "registered": obj is not None,
        "paused": paused or (obj is not None and obj.repeats == 0),
        "next_run": obj.next_run.isoformat() if obj is not None and obj.next_run and obj.repeats != 0 else None,
    }


def schedule_pause(*, actor=None) -> dict:
    from django_q.models import Schedule

    setting_set(key=conf.PAUSED_SETTING, value=True, description="MDM export schedule paused")
    Schedule.objects.filter(name=conf.SCHEDULE_NAME).update(repeats=0)
    activity_record(event="mdm.schedule.paused", actor=actor, message="MDM export schedule paused")
    return schedule_show()


def schedule_resume(*, actor=None) -> dict:
    from sync.schedules import schedule_upsert

    from .schedules import export_spec

    setting_set(key=conf.PAUSED_SETTING, value=False, description="MDM export schedule paused")
    schedule_upsert(export_spec())  # recomputes next_run from the cron expression
    activity_record(event="mdm.schedule.resumed", actor=actor, message="MDM export schedule resumed")
    return schedule_show()
