"""Maintenance: return expired leases (a worker died), resume queues nobody works, purge old queues."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from core import clock

from ..activity import activity_record
from ..models import ActivityLevel, LineState, SyncQueue, SyncQueueLine, SyncStatus
from .lines import lines_sweep_skipped, retry_delay
from .locks import is_postgres, lock_queue
from .runs import queue_is_stalled, run_enqueue
from .settle import queue_finalize
from .state import line_failed_record, lines_move


def lines_reap(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Return lines whose lease expired (their worker died or timed out) to draft, counting the crash as
    an attempt (attempts were incremented at claim); lines out of attempts fail. Then settle or resume
    the queues concerned."""
    now = now or clock.now()
    returned = failed = 0
    per_queue: dict[int, dict[str, int]] = {}
    failed_lines: list[tuple[int, int, str, int, str]] = []
    expired_queues = list(
        SyncQueueLine.objects.filter(state=LineState.PROCESSING, lease_until__lt=now)
        .values_list("queue_id", flat=True)
        .distinct()
    )
    for qid in expired_queues:
        with transaction.atomic():
            try:
                lock_queue(qid)  # queue first, then lines (see lock_queue)
            except SyncQueue.DoesNotExist:
                continue  # deleted since the look-up above: its lines went with it (lines_of_deleted_queue)
            qs = SyncQueueLine.objects.filter(queue_id=qid, state=LineState.PROCESSING, lease_until__lt=now).order_by(
                "id"
            )
            if is_postgres():
                qs = qs.select_for_update(skip_locked=True)
            delta = {"draft": 0, "failed": 0}
            for row in qs.values("id", "attempts", "lease_token", "external_id")[:5000]:
                # Compare-and-set on the token: a worker that settles the line meanwhile keeps it.
                held = Q(id=row["id"], lease_token=row["lease_token"])
                common = {"lease_until": None, "lease_token": "", "updated_at": now}
                if row["attempts"] >= settings.SYNC_MAX_ATTEMPTS:
                    error = f"worker lost the line {row['attempts']} time(s) (lease expired); giving up"
                    n = lines_move(
                        qid,
                        from_state=LineState.PROCESSING,
                        to_state=LineState.FAILED,
                        lines=held,
                        last_error=error,
                        **common,
                    )
                    delta["failed"] += n
                    if n:
                        failed_lines.append((qid, row["id"], row["external_id"], row["attempts"], error))
                else:
                    n = lines_move(
                        qid,
                        from_state=LineState.PROCESSING,
                        to_state=LineState.DRAFT,
                        lines=held,
                        next_attempt_at=now + dt.timedelta(seconds=retry_delay(row["attempts"])),
                        last_error="worker lost the line (lease expired); retrying",
                        **common,
                    )
                    delta["draft"] += n
            if not (delta["draft"] or delta["failed"]):
                continue
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
        for line_qid, line_id, external_id, attempts, error in failed_lines:
            if line_qid == qid:
                line_failed_record(queue, error=error, external_id=external_id, attempts=attempts, line_id=line_id)
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
            run_enqueue(queue.pk)
            resumed += 1
    return resumed


def queues_purge(*, days: int | None = None) -> int:
    """Delete finished queues (with their lines and activity) older than the retention period."""
    days = settings.SYNC_RETENTION_DAYS if days is None else days
    cutoff = clock.now() - dt.timedelta(days=days)
    # One transaction holding the queues' locks (lock_queue's: taken by everyone who inserts lines): a queue
    # retried meanwhile is skipped (locked) or waits and is gone, so no line is inserted for a queue being
    # purged, and a queue is never deleted after it was made active again.
    with transaction.atomic():
        old = SyncQueue.objects.filter(is_active=False, finished_at__lt=cutoff)
        if is_postgres():
            old = old.select_for_update(skip_locked=True)
        ids = list(old.values_list("id", flat=True)[:10_000])
        if not ids:
            return 0
        SyncStatus.objects.filter(last_queue_id__in=ids).update(last_queue=None)
        SyncQueueLine.objects.filter(queue_id__in=ids).delete()
        with lines_sweep_skipped():  # locked before their lines went: none can have come since
            SyncQueue.objects.filter(id__in=ids).delete()
    return len(ids)
