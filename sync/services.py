"""Writes. Every interface (admin, API, manage.py, tasks, webhooks) changes sync state through here."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db import connection as db_connection
from django.db.models import Count, F
from django_q.tasks import async_task

from core import clock
from core.redaction import redact

from .activity import activity_record
from .bulk import UNSTORABLE_ERROR, copy_rows, payload_text, unstorable, without_nul
from .bulk import relaxed_allowed as bulk_relaxed_allowed
from .models import (
    ActivityLevel,
    Lane,
    LineAction,
    LineState,
    Origin,
    QueueState,
    StatusState,
    SyncQueue,
    SyncQueueLine,
    SyncStatus,
    SystemSetting,
)
from .registry import connection_model
from .signals import sync_run_finished

log = logging.getLogger(__name__)

FINAL_STATES = (QueueState.DONE, QueueState.PARTIAL, QueueState.FAILED, QueueState.CANCELLED)


# --- Errors the interfaces translate into 4xx ----------------------------------------------------------
class SyncServiceError(Exception):
    http_status = 400
    code = "invalid"


class IdempotencyConflict(SyncServiceError):
    http_status = 422
    code = "idempotency_key_reused"


class RunActive(SyncServiceError):
    http_status = 409
    code = "run_active"


class InvalidQueueAction(SyncServiceError):
    http_status = 409
    code = "invalid_queue_action"


class ConnectionUnavailable(SyncServiceError):
    http_status = 409
    code = "connection_unavailable"


class RunSkipped(SyncServiceError):
    """The run's policy did not let it start (a feature flag is off); recorded as skipped with the reason."""

    http_status = 409
    code = "run_skipped"


class UnknownResourceError(SyncServiceError):
    http_status = 400
    code = "unknown_resource"


class InvalidIdempotencyKey(SyncServiceError):
    http_status = 400
    code = "invalid_idempotency_key"


IDEMPOTENCY_KEY_MAX = 255


# --- Pure helpers ----------------------------------------------------------------------------------------
def derive_queue_state(
    *,
    draft: int,
    processing: int,
    done: int,
    failed: int,
    cancelled: int,
    fetch_done: bool = True,
    started: bool = False,
    cancelled_by_user: bool = False,
    fetch_failed: bool = False,
) -> QueueState:
    """Queue state from line counts (DESIGN.md invariant 3), plus the run-level facts counts cannot show:
    a fetch still going (processing), a fetch that failed (no line can make the run whole), a cancel."""
    total = draft + processing + done + failed + cancelled
    if processing:
        return QueueState.PROCESSING
    if cancelled_by_user and not draft:
        return QueueState.CANCELLED
    if not fetch_done and not fetch_failed:
        return QueueState.PROCESSING if (started or total) and (started or draft != total) else QueueState.DRAFT
    if total == 0:
        return QueueState.FAILED if fetch_failed else QueueState.DONE
    if draft == total:
        return QueueState.DRAFT
    if draft:
        return QueueState.PROCESSING
    if fetch_failed:
        return QueueState.PARTIAL if done else QueueState.FAILED
    if failed == 0:
        return QueueState.DONE
    if done == 0:
        return QueueState.FAILED
    return QueueState.PARTIAL


def retry_delay(attempt: int) -> float:
    """Exponential backoff with jitter: base·2^(attempt-1) ±20 % (1 s, 2 s, 4 s by default)."""
    base = settings.SYNC_RETRY_BASE_SECONDS
    if base <= 0:
        return 0.0
    return base * (2 ** max(attempt - 1, 0)) * random.uniform(0.8, 1.2)


def params_fingerprint(*, connection_id: int, resource: str, full_scan: bool, params: dict) -> str:
    blob = json.dumps({"c": connection_id, "r": resource, "f": full_scan, "p": params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def is_postgres() -> bool:
    return db_connection.vendor == "postgresql"


def lock_queue(queue_id: int, *, relaxed_commit: bool = False) -> None:
    """Take the queue row's lock. Lock order everywhere: the queue row first, then its lines; a
    transaction holding line locks and then waiting for the queue (or the reverse) would deadlock with
    cancel / force-done / webhook deliveries. On SQLite, IMMEDIATE transactions already serialise writers.
    ``relaxed_commit``: the engine's page and batch transactions also turn off the wait for the WAL flush
    here, in the same round trip (sync/bulk.py relaxed_commit says why that is safe)."""
    if not is_postgres():
        return
    if relaxed_commit and bulk_relaxed_allowed():
        table = SyncQueue._meta.db_table
        with db_connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, set_config('synchronous_commit', 'off', true) FROM {table} WHERE id = %s FOR UPDATE",  # noqa: S608
                [queue_id],
            )
        return
    SyncQueue.objects.select_for_update().filter(pk=queue_id).values_list("id", flat=True).first()


# --- Status ------------------------------------------------------------------------------------------------
def status_upsert(*, connection, resource: str, **fields) -> SyncStatus:
    """Upsert, so that a failure before any status row exists still records FAILED."""
    fields = {k: (redact(v)[:10_000] if k == "last_error" and v else v) for k, v in fields.items()}
    for _ in range(3):
        try:
            status, _created = SyncStatus.objects.update_or_create(
                connection=connection,
                resource=resource,
                defaults={"organization_id": connection.organization_id, **fields},
            )
            return status
        except IntegrityError:  # a concurrent first insert won; update it on the next pass
            continue
    raise RuntimeError("could not upsert SyncStatus")


# --- Starting runs -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StartResult:
    queue: SyncQueue
    created: bool
    reason: str  # "created" | "idempotent" | "running" | "throttled"


def _validate(connection, resource: str) -> None:
    from sync.registry import UnknownKind, UnknownResource, get_connector

    try:
        get_connector(connection.kind).resource(resource)
    except (UnknownKind, UnknownResource) as exc:
        raise UnknownResourceError(str(exc)) from None


def sync_start(
    *,
    connection,
    resource: str,
    origin: str = Origin.MANUAL,
    actor=None,
    idempotency_key: str = "",
    full_scan: bool = False,
    params: dict | None = None,
    enqueue: bool = True,
    force: bool = False,
) -> StartResult:
    """Start a fetch run of one resource. Same idempotency key + same parameters returns the same queue
    (resuming it if its worker died); a different one raises IdempotencyConflict. If a run of this
    resource is already active, that queue is returned instead of a twin. The run policy may refuse it
    (a feature flag off: RunSkipped) or throttle it (an automatic trigger inside the window gets the last
    run back, reason "throttled"; ``force`` skips the throttle), see sync.admission."""
    from .admission import disabled_reason, run_policy, throttled_by

    _validate(connection, resource)
    policy = run_policy(connection, resource)
    if reason := disabled_reason(policy):
        _record_skip(connection=connection, resource=resource, reason=reason, origin=origin, actor=actor)
        raise RunSkipped(reason)
    params = params or {}
    key = (idempotency_key or "").strip()
    if len(key) > IDEMPOTENCY_KEY_MAX:
        # Never cut it: two keys sharing their first 255 characters would then share one run.
        raise InvalidIdempotencyKey(f"idempotency key longer than {IDEMPOTENCY_KEY_MAX} characters")
    fingerprint = params_fingerprint(connection_id=connection.pk, resource=resource, full_scan=full_scan, params=params)
    if key:
        existing = SyncQueue.objects.filter(organization_id=connection.organization_id, idempotency_key=key).first()
        if existing is not None:
            return _idempotent_hit(existing, fingerprint, enqueue=enqueue)
    if connection.needs_reauth or not connection.is_active:
        raise ConnectionUnavailable(
            f"connection {connection.name!r} {'needs re-authorisation' if connection.needs_reauth else 'is disabled'}; "
            "reconnect it before syncing"
        )
    recent = throttled_by(connection, resource, policy, origin=origin, force=force)
    if recent is not None:
        return StartResult(recent, False, "throttled")
    try:
        with transaction.atomic():
            queue = SyncQueue.objects.create(
                organization_id=connection.organization_id,
                connection=connection,
                resource=resource,
                origin=origin,
                lane=Lane.RUN,
                idempotency_key=key,
                params=params,
                params_hash=fingerprint,
                full_scan=full_scan,
                created_by=actor if getattr(actor, "pk", None) else None,
                cursor_from=_current_cursor(connection, resource),
            )
            _touch(queue.pk)
            activity_record(
                event="queue.created",
                queue=queue,
                actor=actor,
                message=f"{origin} run of {resource} queued" + (" (full scan)" if full_scan else ""),
                data={"origin": origin, "full_scan": full_scan, "idempotency_key": key},
            )
            if enqueue:
                enqueue_queue(queue.pk)
    except IntegrityError:
        if key:
            existing = SyncQueue.objects.filter(organization_id=connection.organization_id, idempotency_key=key).first()
            if existing is not None:
                return _idempotent_hit(existing, fingerprint, enqueue=enqueue)
        running = SyncQueue.objects.filter(
            connection=connection, resource=resource, lane=Lane.RUN, is_active=True
        ).first()
        if running is None:  # finished between our insert and this read: try once more
            return sync_start(
                connection=connection,
                resource=resource,
                origin=origin,
                actor=actor,
                idempotency_key=key,
                full_scan=full_scan,
                params=params,
                enqueue=enqueue,
                force=force,
            )
        return StartResult(running, False, "running")
    return StartResult(queue, True, "created")


def _record_skip(*, connection, resource: str, reason: str, origin: str, actor=None) -> None:
    """A run its policy did not let start: activity, status, and the sink's outcome hook."""
    from .sinks import sink_for

    activity_record(
        event="run.skipped",
        connection=connection,
        actor=actor if getattr(actor, "pk", None) else None,
        level=ActivityLevel.WARNING,
        message=f"{origin} run of {resource} skipped: {reason}",
        data={"resource": resource, "reason": reason, "origin": origin},
    )
    status_upsert(connection=connection, resource=resource, state=StatusState.SKIPPED, last_error=reason)
    sink_for(connection.kind).record_outcome(connection, None, reason)


def _idempotent_hit(queue: SyncQueue, fingerprint: str, *, enqueue: bool) -> StartResult:
    if queue.params_hash != fingerprint:
        raise IdempotencyConflict(
            "this Idempotency-Key was already used with different parameters "
            f"(queue #{queue.pk}); use a new key for a different request"
        )
    if enqueue and queue.is_active and queue_is_stalled(queue):
        enqueue_queue(queue.pk)  # resume a run whose worker died
    return StartResult(queue, False, "idempotent")


def _current_cursor(connection, resource: str) -> str:
    return (
        SyncStatus.objects.filter(connection=connection, resource=resource).values_list("cursor", flat=True).first()
        or ""
    )


def enqueue_queue(queue_id: int) -> str:
    """Ask django-q2 to work a queue. Arguments are ids only; running it twice is safe."""
    return async_task("sync.tasks.run_queue", queue_id, task_name=f"queue-{queue_id}", group="sync-queues")


def queue_is_stalled(queue: SyncQueue, *, now: dt.datetime | None = None) -> bool:
    """No worker has touched an unfinished queue for longer than a lease."""
    now = now or clock.now()
    if not queue.is_active:
        return False
    if not queue.fetch_done and queue.fetch_lease_until is not None and queue.fetch_lease_until >= now:
        return False  # someone holds the fetch lease
    # updated_at moves on every claim, page and settle (always from core.clock, see _touch). A queue just
    # created is not stalled: its task is on the way.
    idle = dt.timedelta(seconds=settings.SYNC_LEASE_SECONDS)
    return queue.updated_at is None or queue.updated_at < now - idle


def _touch(queue_id: int) -> None:
    """Model.save() stamps updated_at from the wall clock; engine timing reads core.clock. Align them."""
    SyncQueue.objects.filter(pk=queue_id).update(updated_at=clock.now())


# --- Records pushed to us (webhooks) ----------------------------------------------------------------------
def sync_enqueue_records(
    *,
    connection,
    resource: str,
    records: list[dict],
    origin: str = Origin.WEBHOOK,
    actor=None,
    deleted: bool = False,
    enqueue: bool = True,
) -> SyncQueue:
    """Put pushed records on the connection's webhook lane as lines (deletions when ``deleted``)."""
    from sync.registry import get_resource

    _validate(connection, resource)
    res = get_resource(connection.kind, resource)
    for _ in range(3):
        try:
            with transaction.atomic():
                queue = (
                    SyncQueue.objects.select_for_update()
                    .filter(connection=connection, resource=resource, lane=Lane.WEBHOOK, is_active=True)
                    .first()
                )
                created = queue is None
                if created:
                    queue = SyncQueue.objects.create(
                        organization_id=connection.organization_id,
                        connection=connection,
                        resource=resource,
                        origin=origin,
                        lane=Lane.WEBHOOK,
                        fetch_done=True,
                        created_by=actor if getattr(actor, "pk", None) else None,
                    )
                    _touch(queue.pk)
                added = lines_add(queue, res, records, action=LineAction.DELETE if deleted else None)
                activity_record(
                    event="webhook.received",
                    queue=queue,
                    actor=actor,
                    message=f"{len(records)} {resource} record(s) pushed ({'deleted' if deleted else 'upsert'}); {added} new line(s)",
                    data={
                        "count": len(records),
                        "deleted": deleted,
                        "external_ids": [str(r.get("id")) if isinstance(r, dict) else "?" for r in records[:20]],
                    },
                )
                if enqueue:
                    enqueue_queue(queue.pk)
                return queue
        except IntegrityError:
            continue  # another delivery created the webhook queue first; append to it
    raise RuntimeError("could not open a webhook queue")


def lines_add(queue: SyncQueue, resource, records: list[dict], *, action: str | None = None) -> int:
    """Insert records as draft lines, deduplicated by external id within the queue. A record seen again
    with a different payload replaces the snapshot and goes back to draft. Call inside a transaction.
    Returns the number of lines that became draft (new or reset)."""
    lock_queue(queue.pk)
    now = clock.now()
    incoming: dict[str, tuple[dict, str, str]] = {}
    invalid: list[SyncQueueLine] = []
    for index, record in enumerate(records):
        try:
            ext = resource.external_id(record)
        except Exception as exc:  # a record we cannot even key fails on its own line
            invalid.append(
                SyncQueueLine(
                    queue=queue,
                    # Unique within the queue even for two deliveries at the same instant.
                    external_id=f"invalid:{index}:{uuid.uuid4().hex}",
                    payload=record if isinstance(record, dict) else {"value": record},
                    state=LineState.FAILED,
                    attempts=1,
                    last_error=f"cannot identify record: {exc}",
                    updated_at=now,
                )
            )
            continue
        if unstorable(record):  # PostgreSQL cannot hold it: its own failed line, nothing else is refused
            invalid.append(
                SyncQueueLine(
                    queue=queue,
                    external_id=f"unstorable:{uuid.uuid4().hex[:12]}:{ext}"[:255],
                    payload=without_nul(record),
                    state=LineState.FAILED,
                    attempts=1,
                    last_error=f"{ext}: {UNSTORABLE_ERROR}"[:2000],
                    updated_at=now,
                )
            )
            continue
        line_action = action or (LineAction.DELETE if resource.is_deleted(record) else LineAction.UPSERT)
        incoming[ext] = (record, line_action, ext)
    existing = (
        {
            line.external_id: line
            for line in SyncQueueLine.objects.filter(queue=queue, external_id__in=list(incoming)).only(
                "id", "external_id", "state", "payload", "action", "lease_token"
            )
        }
        if incoming
        else {}
    )
    new_lines = [
        SyncQueueLine(queue=queue, external_id=ext, payload=rec, action=act, updated_at=now)
        for ext, (rec, act, _) in incoming.items()
        if ext not in existing
    ]
    if new_lines:
        lines_insert(new_lines)
    if invalid:
        SyncQueueLine.objects.bulk_create(invalid)
    # Lines that leave a state, by state. Each reset is a compare-and-set on the state (and lease token)
    # we read, so a worker claiming or settling the line meanwhile cannot make the counters drift.
    resets = {state: 0 for state in LineState.values}
    for ext, line in existing.items():
        record, act, _ = incoming[ext]
        if line.payload == record and line.action == act:
            continue  # overlap: the same snapshot again
        if line.state == LineState.CANCELLED and queue.cancelled_at is not None:
            continue  # the queue was cancelled; do not revive its lines
        # A line a worker holds is taken back too (its token no longer matches, so that worker cannot
        # mark it done): the newer snapshot must be written, not lost.
        n = SyncQueueLine.objects.filter(pk=line.pk, state=line.state, lease_token=line.lease_token).update(
            payload=record,
            action=act,
            state=LineState.DRAFT,
            attempts=0,
            next_attempt_at=None,
            last_error="",
            lease_until=None,
            lease_token="",
            updated_at=now,
        )
        if n:
            resets[line.state] += 1
    left = sum(n for state, n in resets.items() if state != LineState.DRAFT)
    SyncQueue.objects.filter(pk=queue.pk).update(
        total_count=F("total_count") + len(new_lines) + len(invalid),
        draft_count=F("draft_count") + len(new_lines) + left,
        processing_count=F("processing_count") - resets[LineState.PROCESSING],
        failed_count=F("failed_count") + len(invalid) - resets[LineState.FAILED],
        done_count=F("done_count") - resets[LineState.DONE],
        cancelled_count=F("cancelled_count") - resets[LineState.CANCELLED],
        updated_at=now,
    )
    reset_total = left
    if invalid:
        SyncQueue.objects.filter(pk=queue.pk).update(action_required=True)
        for line in invalid:
            activity_record(event="line.failed", queue=queue, level=ActivityLevel.ERROR, message=line.last_error)
    return len(new_lines) + reset_total


@dataclass(slots=True)
class NewLine:
    """A line to insert with lines_insert: the fields a new line sets, without a model instance's cost."""

    queue_id: int
    external_id: str
    payload: dict
    state: str = LineState.DRAFT
    action: str = LineAction.UPSERT
    attempts: int = 0
    next_attempt_at: dt.datetime | None = None
    last_error: str = ""
    updated_at: dt.datetime | None = None


_LINE_COLUMNS = (
    "queue_id",
    "external_id",
    "action",
    "payload",
    "state",
    "attempts",
    "next_attempt_at",
    "lease_token",
    "last_error",
    "updated_at",
)


def lines_insert(lines: list[NewLine] | list[SyncQueueLine]) -> None:
    """Insert new lines as they are (state, attempts, error, backoff); the caller updates the queue's
    counters. On PostgreSQL with COPY (see sync/bulk.py for why): same rows, same constraints."""
    if not is_postgres():
        SyncQueueLine.objects.bulk_create(
            [
                line
                if isinstance(line, SyncQueueLine)
                else SyncQueueLine(**{name: getattr(line, name) for name in NewLine.__slots__})
                for line in lines
            ],
            batch_size=1000,
        )
        return
    copy_rows(
        SyncQueueLine._meta.db_table,
        _LINE_COLUMNS,
        (
            (
                line.queue_id,
                line.external_id,
                str(line.action),
                payload_text(line.payload),
                str(line.state),
                line.attempts,
                line.next_attempt_at,
                "",
                line.last_error,
                line.updated_at,
            )
            for line in lines
        ),
    )


# --- Queue actions (start / status / retry / force-done / cancel) -------------------------------------------
def queue_retry(*, queue: SyncQueue, actor=None, enqueue: bool = True) -> SyncQueue:
    """Re-queue failed lines (attempts reset). A run whose fetch failed also resumes fetching."""
    with transaction.atomic():
        queue = SyncQueue.objects.select_for_update().get(pk=queue.pk)
        if queue.state in (QueueState.PROCESSING, QueueState.DRAFT) and queue.is_active:
            raise InvalidQueueAction(f"queue #{queue.pk} is still {queue.state}; retry applies to finished queues")
        if queue.state == QueueState.CANCELLED:
            raise InvalidQueueAction(f"queue #{queue.pk} was cancelled; start a new run instead")
        if not queue.failed_count and not queue.fetch_error:
            raise InvalidQueueAction(f"queue #{queue.pk} has no failed lines to retry")
        now = clock.now()
        n = SyncQueueLine.objects.filter(queue=queue, state=LineState.FAILED).update(
            state=LineState.DRAFT, attempts=0, next_attempt_at=None, lease_until=None, updated_at=now
        )
        queue.draft_count += n
        queue.failed_count -= n
        queue.action_required = False
        queue.is_active = True
        queue.finished_at = None
        queue.last_error = ""
        if queue.fetch_error:
            queue.fetch_error = ""
            queue.fetch_done = False
        queue.state = QueueState.PROCESSING if queue.done_count or queue.cancelled_count else QueueState.DRAFT
        try:
            with transaction.atomic():
                queue.save()
                _touch(queue.pk)
        except IntegrityError:
            raise RunActive(
                f"another {queue.resource} run is active on this connection; retry queue #{queue.pk} when it finishes"
            ) from None
        activity_record(
            event="queue.retry", queue=queue, actor=actor, message=f"{n} failed line(s) re-queued", data={"lines": n}
        )
        if enqueue:
            enqueue_queue(queue.pk)
    return queue


def queue_force_done(*, queue: SyncQueue, actor=None) -> SyncQueue:
    """Cancel every draft and failed line so the queue completes (done), and the cursor may advance."""
    with transaction.atomic():
        queue = SyncQueue.objects.select_for_update().get(pk=queue.pk)
        if queue.state == QueueState.DONE and not queue.is_active:
            raise InvalidQueueAction(f"queue #{queue.pk} is already done")
        if queue.state == QueueState.CANCELLED:
            raise InvalidQueueAction(f"queue #{queue.pk} was cancelled")
        if SyncQueueLine.objects.filter(queue=queue, state=LineState.PROCESSING).exists():
            raise InvalidQueueAction(
                f"queue #{queue.pk} has lines being processed right now; wait for them or cancel the queue"
            )
        now = clock.now()
        n = SyncQueueLine.objects.filter(queue=queue, state__in=[LineState.DRAFT, LineState.FAILED]).update(
            state=LineState.CANCELLED, lease_until=None, updated_at=now, last_error=F("last_error")
        )
        queue.fetch_done = True
        queue.fetch_error = ""
        queue.action_required = False
        queue.save(update_fields=["fetch_done", "fetch_error", "action_required", "updated_at"])
        activity_record(
            event="queue.force_done",
            queue=queue,
            actor=actor,
            message=f"{n} remaining line(s) cancelled; queue forced done",
            data={"lines": n},
        )
        queue_recount(queue)
        queue_finalize(queue=queue, forced=True)
    queue.refresh_from_db()
    return queue


def queue_cancel(*, queue: SyncQueue, actor=None) -> SyncQueue:
    """Stop a run: draft lines are cancelled, fetching stops, the cursor stays where it was."""
    with transaction.atomic():
        queue = SyncQueue.objects.select_for_update().get(pk=queue.pk)
        if queue.state in FINAL_STATES and not queue.is_active:
            raise InvalidQueueAction(f"queue #{queue.pk} is already {queue.state}")
        now = clock.now()
        n = SyncQueueLine.objects.filter(queue=queue, state=LineState.DRAFT).update(
            state=LineState.CANCELLED, updated_at=now
        )
        queue.cancelled_at = now
        queue.fetch_done = True
        queue.save(update_fields=["cancelled_at", "fetch_done", "updated_at"])
        activity_record(
            event="queue.cancelled",
            queue=queue,
            actor=actor,
            message=f"cancelled; {n} draft line(s) dropped",
            data={"lines": n},
        )
        queue_recount(queue)
        queue_finalize(queue=queue)
    queue.refresh_from_db()
    return queue


def queue_recount(queue: SyncQueue) -> dict[str, int]:
    """Recompute the per-state counters from the lines (repairs drift after a crash)."""
    # Under the queue row's lock: a worker's line changes and its counter delta commit together, and
    # its counter update waits for this lock, so it lands on top of a count that excludes it.
    with transaction.atomic():
        SyncQueue.objects.select_for_update().filter(pk=queue.pk).values_list("id", flat=True).first()
        counts = {s: 0 for s in LineState.values}
        for row in SyncQueueLine.objects.filter(queue=queue).values("state").annotate(n=Count("id")):
            counts[row["state"]] = row["n"]
        SyncQueue.objects.filter(pk=queue.pk).update(
            total_count=sum(counts.values()),
            draft_count=counts["draft"],
            processing_count=counts["processing"],
            done_count=counts["done"],
            failed_count=counts["failed"],
            cancelled_count=counts["cancelled"],
        )
    return counts


def queue_finalize(*, queue: SyncQueue, forced: bool = False) -> SyncQueue | None:
    """If nothing is left to do, settle the queue: final state, release the run slot, status, cursor,
    activity, the finished signal. Safe to call any number of times and from any worker."""
    with transaction.atomic():
        q = SyncQueue.objects.select_for_update(of=("self",)).select_related("connection").get(pk=queue.pk)
        if q.cancelled_at is not None and q.draft_count and not q.processing_count:
            # A line a worker put back for a retry after the cancel: the cancel wins.
            n = SyncQueueLine.objects.filter(queue=q, state=LineState.DRAFT).update(
                state=LineState.CANCELLED, updated_at=clock.now()
            )
            SyncQueue.objects.filter(pk=q.pk).update(
                draft_count=F("draft_count") - n, cancelled_count=F("cancelled_count") + n
            )
            q.refresh_from_db()
        state = derive_queue_state(
            draft=q.draft_count,
            processing=q.processing_count,
            done=q.done_count,
            failed=q.failed_count,
            cancelled=q.cancelled_count,
            fetch_done=q.fetch_done,
            started=q.started_at is not None,
            cancelled_by_user=q.cancelled_at is not None,
            fetch_failed=bool(q.fetch_error),
        )
        if state not in FINAL_STATES:
            if q.state != state:
                SyncQueue.objects.filter(pk=q.pk).update(state=state)
            return None
        if not q.is_active and q.state == state:
            return q  # already settled by someone else
        now = clock.now()
        q.state = state
        q.is_active = False
        q.finished_at = now
        q.action_required = state in (QueueState.PARTIAL, QueueState.FAILED)
        if q.action_required and not q.last_error:
            q.last_error = q.fetch_error or _first_line_error(q)
        q.save(update_fields=["state", "is_active", "finished_at", "action_required", "last_error", "updated_at"])
        if q.lane == Lane.RUN:
            _settle_status(q, state, now)
            if state != QueueState.CANCELLED:
                connection_record_result(connection=q.connection, ok=state == QueueState.DONE, error=q.last_error)
        level = ActivityLevel.INFO if state in (QueueState.DONE, QueueState.CANCELLED) else ActivityLevel.ERROR
        summary = f"{q.done_count} done, {q.failed_count} failed, {q.cancelled_count} cancelled of {q.total_count}"
        activity_record(
            event=f"queue.{state}",
            queue=q,
            level=level,
            message=f"run finished {state}{' (forced)' if forced else ''}: {summary}"
            + (f"; {q.last_error}" if q.action_required and q.last_error else ""),
            data={
                "done": q.done_count,
                "failed": q.failed_count,
                "cancelled": q.cancelled_count,
                "total": q.total_count,
                "action_required": q.action_required,
            },
        )
        if q.action_required:
            activity_record(
                event="queue.action_required",
                queue=q,
                level=ActivityLevel.WARNING,
                message=f"queue #{q.pk} needs action: "
                + (
                    "reconnect the connection (authentication refused), then resume the run"
                    if q.connection.needs_reauth
                    else "retry the failed lines or force it done"
                ),
            )
        succeeded = state == QueueState.DONE
        transaction.on_commit(lambda: _send_finished(q, succeeded))
    return q


def _send_finished(queue: SyncQueue, succeeded: bool) -> None:
    for receiver, result in sync_run_finished.send_robust(sender=SyncQueue, queue=queue, succeeded=succeeded):
        if isinstance(result, Exception):
            log.error("sync_run_finished receiver %r failed: %s", receiver, redact(result))


def _first_line_error(queue: SyncQueue) -> str:
    line = (
        SyncQueueLine.objects.filter(queue=queue, state=LineState.FAILED).exclude(last_error="").order_by("id").first()
    )
    if line is None:
        return ""
    return f"{queue.failed_count} line(s) failed; first: {line.external_id}: {line.last_error}"


def _settle_status(q: SyncQueue, state: str, now: dt.datetime) -> None:
    from sync.registry import get_resource

    fields: dict = {"finished_at": now, "last_queue": q, "records_failed": q.failed_count}
    if state == QueueState.DONE:
        fields.update(state=StatusState.SUCCESS, last_success_at=now, last_error="", records_synced=q.done_count)
        if q.cursor_to:
            current = _current_cursor(q.connection, q.resource)
            resource = get_resource(q.connection.kind, q.resource)
            fields["cursor"] = cursor_max(resource.cursor_kind, current, q.cursor_to)
    elif state == QueueState.CANCELLED:
        fields.update(state=StatusState.IDLE, last_error=f"run #{q.pk} was cancelled")
    else:
        fields.update(
            state=StatusState.FAILED,
            last_error=q.last_error or f"run #{q.pk} ended {state}",
            records_synced=q.done_count,
        )
    status_upsert(connection=q.connection, resource=q.resource, **fields)


def cursor_max(kind: str, a: str, b: str) -> str:
    if not a:
        return b
    if not b:
        return a
    if kind == "version":
        try:
            return a if int(a) >= int(b) else b
        except ValueError:
            return b
    return max(a, b)  # ISO 8601 UTC strings of one format sort as time


# --- Maintenance -------------------------------------------------------------------------------------------
def lines_reap(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Return lines whose lease expired (their worker died or timed out) to draft, counting the crash as
    an attempt (attempts were incremented at claim); lines out of attempts fail. Then settle or resume
    the queues concerned."""
    now = now or clock.now()
    returned = failed = 0
    per_queue: dict[int, dict[str, int]] = {}
    failed_lines: list[tuple[int, int, str]] = []
    expired_queues = list(
        SyncQueueLine.objects.filter(state=LineState.PROCESSING, lease_until__lt=now)
        .values_list("queue_id", flat=True)
        .distinct()
    )
    for qid in expired_queues:
        with transaction.atomic():
            lock_queue(qid)  # queue first, then lines (see lock_queue)
            qs = SyncQueueLine.objects.filter(queue_id=qid, state=LineState.PROCESSING, lease_until__lt=now).order_by(
                "id"
            )
            if is_postgres():
                qs = qs.select_for_update(skip_locked=True)
            delta = {"draft": 0, "failed": 0}
            for row in qs.values("id", "attempts", "lease_token", "external_id")[:5000]:
                # Compare-and-set on the token: a worker that settles the line meanwhile keeps it.
                held = SyncQueueLine.objects.filter(
                    id=row["id"], state=LineState.PROCESSING, lease_token=row["lease_token"]
                )
                if row["attempts"] >= settings.SYNC_MAX_ATTEMPTS:
                    error = f"worker lost the line {row['attempts']} time(s) (lease expired); giving up"
                    n = held.update(
                        state=LineState.FAILED, lease_until=None, lease_token="", updated_at=now, last_error=error
                    )
                    delta["failed"] += n
                    if n:
                        failed_lines.append((qid, row["id"], f"{row['external_id']}: {error}"))
                else:
                    n = held.update(
                        state=LineState.DRAFT,
                        lease_until=None,
                        lease_token="",
                        updated_at=now,
                        next_attempt_at=now + dt.timedelta(seconds=retry_delay(row["attempts"])),
                        last_error="worker lost the line (lease expired); retrying",
                    )
                    delta["draft"] += n
            if not (delta["draft"] or delta["failed"]):
                continue
            # Counters move in the same transaction as the lines (no window where they disagree).
            updates = {
                "draft_count": F("draft_count") + delta["draft"],
                "failed_count": F("failed_count") + delta["failed"],
                "processing_count": F("processing_count") - (delta["draft"] + delta["failed"]),
            }
            if delta["failed"]:
                updates["action_required"] = True
            SyncQueue.objects.filter(pk=qid).update(**updates)
            per_queue[qid] = delta
            returned += delta["draft"]
            failed += delta["failed"]
    for qid, delta in per_queue.items():
        queue = SyncQueue.objects.select_related("connection", "organization").get(pk=qid)
        activity_record(
            event="lines.reaped",
            queue=queue,
            level=ActivityLevel.WARNING,
            message=f"expired leases: {delta['draft']} line(s) back to draft, {delta['failed']} failed "
            "(a worker died or timed out; counted as an attempt)",
            data=delta,
        )
        for line_qid, line_id, message in failed_lines:
            if line_qid == qid:
                activity_record(
                    event="line.failed",
                    queue=queue,
                    line=SyncQueueLine(pk=line_id, queue_id=qid),
                    level=ActivityLevel.ERROR,
                    message=message,
                )
    # A queue whose lines we just reaped has lost its worker: resume it even if it looks recently touched.
    resumed = queues_resume_stalled(now=now, lost=set(per_queue))
    return {"returned": returned, "failed": failed, "resumed": resumed}


def queues_resume_stalled(*, now: dt.datetime | None = None, lost: set[int] | None = None) -> int:
    """Re-enqueue active queues nobody is working (crash, lost task) and those in ``lost`` (their lines'
    leases just expired); settle ones with nothing left. A spare resume is harmless: workers share queues."""
    now = now or clock.now()
    lost = lost or set()
    resumed = 0
    for queue in SyncQueue.objects.filter(is_active=True).select_related("connection"):
        if queue.fetch_done and not queue.draft_count and not queue.processing_count:
            queue_finalize(queue=queue)
            continue
        if queue.pk in lost or queue_is_stalled(queue, now=now):
            activity_record(
                event="queue.resumed",
                queue=queue,
                level=ActivityLevel.WARNING,
                message="no worker has touched this queue for a lease period; resuming it",
            )
            SyncQueue.objects.filter(pk=queue.pk).update(updated_at=now)
            enqueue_queue(queue.pk)
            resumed += 1
    return resumed


def queues_purge(*, days: int | None = None) -> int:
    """Delete finished queues (with their lines and activity) older than the retention period."""
    days = settings.SYNC_RETENTION_DAYS if days is None else days
    cutoff = clock.now() - dt.timedelta(days=days)
    ids = list(SyncQueue.objects.filter(is_active=False, finished_at__lt=cutoff).values_list("id", flat=True)[:10_000])
    if not ids:
        return 0
    SyncStatus.objects.filter(last_queue_id__in=ids).update(last_queue=None)
    SyncQueueLine.objects.filter(queue_id__in=ids).delete()
    SyncQueue.objects.filter(id__in=ids).delete()
    return len(ids)


# --- Settings --------------------------------------------------------------------------------------------------
def setting_set(*, key: str, value, organization=None, description: str = "") -> SystemSetting:
    obj, _ = SystemSetting.objects.update_or_create(
        organization=organization,
        key=key,
        defaults={"value": value, **({"description": description} if description else {})},
    )
    return obj


def connection_mark_needs_reauth(*, connection, reason: str, actor=None) -> None:
    Connection = connection_model()
    Connection.objects.filter(pk=connection.pk).update(
        needs_reauth=True, last_error=redact(reason)[:2000], health="down"
    )
    connection.needs_reauth = True
    activity_record(
        event="connection.needs_reauth",
        connection=connection,
        actor=actor,
        level=ActivityLevel.ERROR,
        message=f"{connection.name}: re-authorisation needed: {reason}",
    )


def connection_record_result(*, connection, ok: bool, error: str = "") -> None:
    Connection = connection_model()
    now = clock.now()
    if ok:
        Connection.objects.filter(pk=connection.pk).update(
            consecutive_failures=0, health="ok", last_error="", last_checked_at=now
        )
    else:
        Connection.objects.filter(pk=connection.pk).update(
            consecutive_failures=F("consecutive_failures") + 1,
            last_error=redact(error)[:2000],
            last_checked_at=now,
        )
        # "down" (needs re-authorisation) is worse than "degraded": a failed run must not soften it.
        Connection.objects.filter(pk=connection.pk, needs_reauth=False).update(health="degraded")
