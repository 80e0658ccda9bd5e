"""Settling a run: its final state, the SyncStatus row (state, counts, cursor), the connection's health,
the activity and the finished signal. Safe to call any number of times and from any worker."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import IntegrityError, transaction

from core import clock
from core.redaction import redact

from ..activity import activity_record
from ..models import ActivityLevel, Lane, LineState, QueueState, StatusState, SyncQueue, SyncQueueLine, SyncStatus
from ..signals import sync_run_finished
from .connections import connection_record_result
from .state import derive_queue_state, lines_move

log = logging.getLogger("sync.services")

FINAL_STATES = (QueueState.DONE, QueueState.PARTIAL, QueueState.FAILED, QueueState.CANCELLED)


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


def current_cursor(connection, resource: str) -> str:
    return (
        SyncStatus.objects.filter(connection=connection, resource=resource).values_list("cursor", flat=True).first()
        or ""
    )


def queue_finalize(*, queue: SyncQueue, forced: bool = False) -> SyncQueue | None:
    """If nothing is left to do, settle the queue: final state, release the run slot, status, cursor,
    activity, the finished signal. Safe to call any number of times and from any worker."""
    with transaction.atomic():
        q = SyncQueue.objects.select_for_update(of=("self",)).select_related("connection").get(pk=queue.pk)
        if q.cancelled_at is not None and q.draft_count and not q.processing_count:
            # A line a worker put back for a retry after the cancel: the cancel wins.
            lines_move(q.pk, from_state=LineState.DRAFT, to_state=LineState.CANCELLED, updated_at=clock.now())
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
        q.action_required = state in (QueueState.PARTIAL, QueueState.FAILED) or q.pending_deletions > 0
        if q.action_required and not q.last_error:
            q.last_error = q.fetch_error or _first_line_error(q) or _held_error(q)
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
                message=(
                    f"queue #{q.pk} needs action: {q.pending_deletions} deletion(s) held by the mass-deletion "
                    "guard; apply them if the upstream really lost those records"
                    if q.pending_deletions and state == QueueState.DONE
                    else f"queue #{q.pk} needs action: "
                    + (
                        "reconnect the connection (authentication refused), then resume the run"
                        if q.connection.needs_reauth
                        else "retry the failed lines or force it done"
                    )
                ),
                data={"pending_deletions": q.pending_deletions},
            )
        succeeded = state == QueueState.DONE
        transaction.on_commit(lambda: _send_finished(q, succeeded))
    return q


def _send_finished(queue: SyncQueue, succeeded: bool) -> None:
    for receiver, result in sync_run_finished.send_robust(sender=SyncQueue, queue=queue, succeeded=succeeded):
        if isinstance(result, Exception):
            log.error("sync_run_finished receiver %r failed: %s", receiver, redact(result))


def _held_error(queue: SyncQueue) -> str:
    if not queue.pending_deletions:
        return ""
    return f"{queue.pending_deletions} record(s) not seen upstream; deletions held by the mass-deletion guard"


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
        from .connections import upstream_fingerprint

        if q.cursor_to and not (q.upstream and upstream_fingerprint(q.connection) != q.upstream):
            # Only for the upstream the run read: a connection re-pointed meanwhile keeps its reset cursor.
            current = current_cursor(q.connection, q.resource)
            resource = get_resource(q.connection.kind, q.resource)
            fields["cursor"] = cursor_max(resource.cursor_kind, current, q.cursor_to)
            if q.upstream:
                fields["upstream"] = q.upstream
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
