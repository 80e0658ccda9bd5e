"""The MDM -> S3 export as an engine run of ``ineligible_items`` (the DocumentSink writes the S3 object after a
complete run, see connectors/mdm/connector.py), its run history (ExportRun: one per engine run, a thin view),
its monitoring log lines, and the schedule's pause/resume/show. Its failure alert is the generic one
(alerts/: a failure streak of ``ineligible_items``, threshold MDM_ALERT_AFTER_FAILURES via the run policy)."""

from __future__ import annotations

import json
import logging

from django.conf import settings

from connectors.models import Connection
from core import clock
from core.redaction import redact
from sync import services as sync_services
from sync.activity import activity_record
from sync.models import ActivityLevel, Organization, Origin, QueueState, SyncActivity
from sync.selectors import setting_get
from sync.services import connection_record_result, setting_set
from sync.sinks import SinkError

from . import conf, readcache, storage
from .models import ExportRun, RunStatus

log = logging.getLogger("synchub.mdm")
FINAL = (RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.SKIPPED)


class ExportConfigError(Exception):
    pass


# --- Configuration --------------------------------------------------------------------------------------
RESOURCE = "ineligible_items"


def export_connection() -> Connection:
    """The MDM account to read: the first active Connection of kind "mdm", else one created from
    MDM_BASE_URL / MDM_API_KEY / MDM_ORGANIZATION (an engine run needs a saved connection; it then shows on
    the dashboard like any other)."""
    conn = Connection.objects.filter(kind="mdm", is_active=True).select_related("organization").order_by("id").first()
    if conn is not None:
        return conn
    if not conf.MDM_BASE_URL:
        raise ExportConfigError("no MDM connection and MDM_BASE_URL is not set")
    org = Organization.objects.filter(slug=conf.MDM_ORGANIZATION).first() if conf.MDM_ORGANIZATION else None
    if org is None:
        raise ExportConfigError("no MDM connection, and MDM_ORGANIZATION names no organization to own one")
    conn = Connection(kind="mdm", name="MDM (environment)", base_url=conf.MDM_BASE_URL, organization=org)
    conn.credentials = {"api_key": conf.MDM_API_KEY} if conf.MDM_API_KEY else {}
    conn.save()
    return conn


def export_target(connection: Connection | None) -> storage.Target:
    cfg = (connection.config or {}) if connection is not None else {}
    return storage.Target(cfg.get("s3_bucket") or conf.MDM_S3_BUCKET, cfg.get("s3_key") or conf.MDM_S3_KEY)


# --- Starting an export: an engine run of ineligible_items ----------------------------------------------
def _origin(origin: str) -> str:
    return origin if origin in Origin.values else Origin.MANUAL  # "admin" and the like are manual runs


def _user(actor):
    return actor if getattr(actor, "pk", None) else None


def _start(*, actor, origin: str, enqueue: bool) -> tuple[ExportRun | None, object]:
    """(a settled ExportRun when no run starts, else None; the StartResult)."""
    try:
        connection = export_connection()
    except ExportConfigError as exc:
        run = ExportRun.objects.create(origin=origin, actor=_user(actor), started_at=clock.now())
        return _fail(run, "config", exc.__class__.__name__, str(exc), actor), None
    try:
        started = sync_services.sync_start(
            connection=connection, resource=RESOURCE, origin=_origin(origin), actor=actor, enqueue=enqueue
        )
    except sync_services.RunSkipped:
        # record_outcome (the sink's hook) has already written the skipped run.
        return ExportRun.objects.filter(status=RunStatus.SKIPPED).order_by("-id").first(), None
    except sync_services.SyncServiceError as exc:  # a disabled connection or one needing re-authorisation
        run = ExportRun.objects.create(
            origin=origin, actor=_user(actor), organization=connection.organization, connection=connection
        )
        return _skip(run, str(exc), actor), None
    if not started.created:
        run = ExportRun.objects.create(
            origin=origin, actor=_user(actor), organization=connection.organization, connection=connection
        )
        return _skip(run, "another export is running", actor), started
    run, created = ExportRun.objects.get_or_create(queue=started.queue, defaults=_run_defaults(started.queue, origin))
    if not created and run.origin != origin:  # a worker inline (Q sync) recorded it first, with the queue's
        ExportRun.objects.filter(pk=run.pk).update(origin=origin)
    return None, started


def _run_defaults(queue, origin: str = "") -> dict:
    return {
        "origin": origin or queue.origin,
        "actor": queue.created_by if queue.created_by_id else None,
        "organization": queue.organization,
        "connection": queue.connection,
    }


def mdm_export_enqueue(*, actor=None, origin: str = "api") -> ExportRun:
    """Start an engine run for a worker (202 + poll the ExportRun, or the queue)."""
    settled, started = _start(actor=actor, origin=origin, enqueue=True)
    if settled is not None:
        return settled
    return ExportRun.objects.get(queue=started.queue)


def mdm_export_run(*, actor=None, origin: str = "manual", run: ExportRun | None = None) -> ExportRun:
    """Run one export now, in this process (manage.py, the schedule's task). Never raises: every outcome is a
    row, an activity and a log line."""
    from sync.tasks import run_queue

    settled, started = _start(actor=actor, origin=run.origin if run else origin, enqueue=False)
    if settled is not None:
        return settled
    run_queue(started.queue.pk)
    started.queue.refresh_from_db()
    return record_outcome(started.queue.connection, started.queue)


# --- The DocumentSink's writer and outcome hook ---------------------------------------------------------
def render_document(rows: list[dict]) -> dict:
    """The JSON other services read from S3: stable keys, nothing else."""
    items = [
        {"sku": r["sku"], "reason": r["reason"], "market": r["market"], "updated_at": r["item_updated_at"]}
        for r in rows
    ]
    return {"generated_at": clock.now().isoformat(), "count": len(items), "items": items}


def write_document(connection: Connection, queue, rows: list[dict]) -> dict:
    """Write the complete export as one S3 object, then (only then) invalidate every reader's cache."""
    run, _ = ExportRun.objects.get_or_create(queue=queue, defaults=_run_defaults(queue))
    target = export_target(connection)
    fields = {"run_id": run.pk, "queue_id": queue.pk}
    _monitor(f"Fetched {len(rows)} ineligible items from MDM", "mdm_items_fetched", item_count=len(rows), **fields)
    try:
        etag = storage.put_json(target, render_document(rows))
    except storage.S3Error as exc:
        raise SinkError(str(exc), stage="s3", error_type=exc.error_type) from None
    ExportRun.objects.filter(pk=run.pk).update(etag=etag, s3_bucket=target.bucket, s3_key=target.key)
    _monitor(
        f"Uploaded ineligible items to S3: {target.uri} (ETag {etag})",
        "mdm_s3_uploaded",
        s3_location=target.uri,
        etag=etag,
        **fields,
    )
    readcache.bump_version(f"{run.pk}:{etag}")
    _monitor("Ineligible items cache invalidated", "mdm_cache_invalidated", version=f"{run.pk}:{etag}", **fields)
    return {"location": target.uri, "etag": etag}


def _monitor(message: str, event: str, **fields) -> None:
    """Seed 004's monitoring lines (start, fetched, uploaded, cache invalidated): plain text, and with
    LOG_FORMAT=json the fields at the top level. Secrets are masked by the logging filter as everywhere."""
    log.info(message, extra={"event": event, **fields})


def record_outcome(connection, queue, skip_reason: str = "") -> ExportRun | None:
    """One ExportRun per engine run (or skipped start), with its log line, activity and alert. Idempotent."""
    if queue is None:
        run = ExportRun.objects.create(
            origin="", organization=connection.organization, connection=connection, started_at=clock.now()
        )
        return _skip(run, skip_reason, None)
    run, _ = ExportRun.objects.get_or_create(queue=queue, defaults=_run_defaults(queue))
    if run.status in FINAL and not _retried_since(run, queue):
        return run
    actor = run.actor
    target = export_target(connection)
    run.started_at = queue.started_at or queue.created_at
    run.s3_bucket, run.s3_key = run.s3_bucket or target.bucket, run.s3_key or target.key
    run.item_count = queue.done_count
    run.rejected_count = queue.failed_count
    finished = queue.finished_at or clock.now()
    run.duration_ms = max(0, int((finished - run.started_at).total_seconds() * 1000))
    if queue.state == QueueState.DONE and run.etag:
        return _succeed(run, actor)
    if queue.state == QueueState.CANCELLED:
        return _skip(run, f"run #{queue.pk} was cancelled", actor)
    failure = SyncActivity.objects.filter(queue=queue, event="run.failed").order_by("-id").first()
    data = failure.data if failure is not None else {}
    run.stack_trace = data.get("stack_trace", "")
    if failure is None:  # fetched completely, but records were rejected or lines force-finished
        stage, error_type = "mdm", "IncompleteRun"
        message = queue.last_error or f"run #{queue.pk} ended {queue.state}; the export was not written"
    else:
        stage = "s3" if data.get("stage") == "s3" else "mdm"
        error_type = data.get("error_type") or "Error"
        message = queue.fetch_error or queue.last_error or failure.message
    if stage == "mdm" and failure is not None:
        _record_connection(connection, ok=False, error=message)
    return _fail(run, stage, error_type, message, actor)


def _retried_since(run: ExportRun, queue) -> bool:
    """A failed run whose queue settled again after it was recorded (a retry): record the new outcome."""
    return bool(
        run.status == RunStatus.FAILED and queue.finished_at and run.finished_at and queue.finished_at > run.finished_at
    )


def _record_connection(connection: Connection, *, ok: bool, error: str = "") -> None:
    if connection.pk:
        connection_record_result(connection=connection, ok=ok, error=error)


def _payload(run: ExportRun) -> dict:
    """The structured record every run leaves (log line and activity data)."""
    data = {
        "run_id": run.pk,
        "queue_id": run.queue_id,
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
            # Facts, not promises: this run wrote no S3 object and did not move the readers' cache version.
            s3_data_preserved=not run.etag,
            cache_unchanged=readcache.shared_version() != f"{run.pk}:{run.etag}",
        )
    if run.status == RunStatus.SKIPPED:
        data["reason"] = run.skip_reason
    return data


def _finish(run: ExportRun, actor, *, event: str, level: str, message: str) -> ExportRun:
    run.finished_at = clock.now()
    if run.duration_ms is None:
        run.duration_ms = 0
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
        queue=run.queue,
        actor=_user(actor),
        message=message,
        data=data,
    )
    return run


def _succeed(run: ExportRun, actor) -> ExportRun:
    run.status = RunStatus.SUCCESS
    run.consecutive_failures = 0
    run.error_stage = run.error_type = run.error_message = ""  # a retried run's earlier failure is over
    return _finish(
        run,
        actor,
        event="mdm.export.succeeded",
        level=ActivityLevel.INFO,
        message=f"exported {run.item_count} ineligible item(s) to {run.s3_location} (ETag {run.etag})",
    )


def _skip(run: ExportRun, reason: str, actor) -> ExportRun:
    run.status = RunStatus.SKIPPED
    run.skip_reason = reason[:255]
    return _finish(
        run, actor, event="mdm.export.skipped", level=ActivityLevel.WARNING, message=f"MDM export skipped: {reason}"
    )


def _fail(run: ExportRun, stage: str, error_type: str, message: str, actor) -> ExportRun:
    run.status = RunStatus.FAILED
    run.error_stage, run.error_type, run.error_message = stage, error_type[:255], redact(message)[:4000]
    run.consecutive_failures = _consecutive_failures(run) + 1
    run = _finish(
        run,
        actor,
        event="mdm.export.failed",
        level=ActivityLevel.ERROR,
        message=f"MDM export failed at {stage}: {error_type}: {run.error_message}",
    )
    data = _payload(run)
    # Seed 004's failure line: the stack trace (redacted) and whether S3 and the cache were left as they were.
    log.error(
        "Ineligible items sync failed: %s: %s",
        run.error_type,
        run.error_message,
        extra={
            "event": "mdm_sync_failed",
            "run_id": run.pk,
            "queue_id": run.queue_id,
            "error_stage": run.error_stage,
            "error_type": run.error_type,
            "error_message": run.error_message,
            "stack_trace": redact(getattr(run, "stack_trace", "") or ""),
            "s3_data_preserved": data["s3_data_preserved"],
            "cache_unchanged": data["cache_unchanged"],
        },
    )
    return run


def _consecutive_failures(run: ExportRun) -> int:
    """Failures since the last success (skipped runs neither count nor break the streak)."""
    previous = ExportRun.objects.filter(status__in=[RunStatus.SUCCESS, RunStatus.FAILED]).exclude(pk=run.pk)
    last = previous.order_by("-created_at", "-id").first()
    return last.consecutive_failures if last and last.status == RunStatus.FAILED else 0


# --- Schedule (generic: sync.runpolicy registers one CRON schedule per MDM connection) ------------------------
def _schedules():
    from django_q.models import Schedule

    return Schedule.objects.filter(name__startswith="mdm:").order_by("name")


def schedule_show() -> dict:
    obj = _schedules().first()
    paused = bool(setting_get(conf.PAUSED_SETTING, default=False))
    return {
        "name": obj.name if obj is not None else "",
        "enabled": settings.INELIGIBLE_ITEMS_SYNC_ENABLED,
        "cron": settings.INELIGIBLE_ITEMS_SYNC_CRON_SCHEDULE,
        "registered": obj is not None,
        "paused": paused or (obj is not None and obj.repeats == 0),
        "next_run": obj.next_run.isoformat() if obj is not None and obj.next_run and obj.repeats != 0 else None,
    }


def schedule_pause(*, actor=None) -> dict:
    from sync import runpolicy
    from sync.models import ScheduleState

    setting_set(key=conf.PAUSED_SETTING, value=True, description="MDM export schedule paused")
    for conn in Connection.objects.filter(kind="mdm"):
        runpolicy.connection_pause(conn, state=ScheduleState.PAUSED, reason="paused by an operator")
    activity_record(event="mdm.schedule.paused", actor=actor, message="MDM export schedule paused")
    return schedule_show()


def schedule_resume(*, actor=None) -> dict:
    from sync import runpolicy

    setting_set(key=conf.PAUSED_SETTING, value=False, description="MDM export schedule paused")
    for conn in Connection.objects.filter(kind="mdm"):
        runpolicy.connection_resume(conn)  # recomputes next_run from the cron expression
    activity_record(event="mdm.schedule.resumed", actor=actor, message="MDM export schedule resumed")
    return schedule_show()
