"""What a person does to a queue: retry its failed lines, force it done, cancel it."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from core import clock

from ..activity import activity_record
from ..models import LineState, QueueState, SyncQueue, SyncQueueLine
from .errors import InvalidQueueAction, RunActive
from .runs import queue_touch, run_enqueue
from .settle import FINAL_STATES, queue_finalize
from .state import COUNTER_FIELDS, lines_move, queue_recount


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
        n = lines_move(
            queue.pk,
            from_state=LineState.FAILED,
            to_state=LineState.DRAFT,
            attempts=0,
            next_attempt_at=None,
            lease_until=None,
            updated_at=now,
        )
        queue.refresh_from_db(fields=COUNTER_FIELDS)
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
                # Not the counters: the move above keeps them.
                queue.save(
                    update_fields=[
                        "action_required",
                        "is_active",
                        "finished_at",
                        "last_error",
                        "fetch_error",
                        "fetch_done",
                        "state",
                        "updated_at",
                    ]
                )
                queue_touch(queue.pk)
        except IntegrityError:
            raise RunActive(
                f"another {queue.resource} run is active on this connection; retry queue #{queue.pk} when it finishes"
            ) from None
        activity_record(
            event="queue.retry", queue=queue, actor=actor, message=f"{n} failed line(s) re-queued", data={"lines": n}
        )
        if enqueue:
            run_enqueue(queue.pk)
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
        n = lines_move(
            queue.pk,
            from_state=(LineState.DRAFT, LineState.FAILED),
            to_state=LineState.CANCELLED,
            lease_until=None,
            updated_at=now,
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
        queue_recount(queue)  # the moves keep the counters; this repairs rows written by hand or before them
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
        n = lines_move(queue.pk, from_state=LineState.DRAFT, to_state=LineState.CANCELLED, updated_at=now)
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
        queue_recount(queue)  # the moves keep the counters; this repairs rows written by hand or before them
        queue_finalize(queue=queue)
    queue.refresh_from_db()
    return queue


def queue_apply_deletions(*, queue: SyncQueue, actor=None) -> SyncQueue:
    """Apply the deletions the mass-deletion guard held on a finished full scan: the rows that scan did not
    see are marked deleted, exactly as its mark-missing step would have. Only on the latest run of that
    (connection, resource): a later run may have seen those records again."""
    from django.apps import apps

    from sync.registry import get_resource

    from ..sinks import missing_rows, without_nested_loops

    with transaction.atomic():
        queue = SyncQueue.objects.select_for_update().select_related("connection").get(pk=queue.pk)
        if not queue.pending_deletions:
            raise InvalidQueueAction(f"queue #{queue.pk} holds no deletions")
        if queue.is_active:
            raise InvalidQueueAction(f"queue #{queue.pk} is still running; apply its deletions when it finishes")
        newer = SyncQueue.objects.filter(
            connection_id=queue.connection_id, resource=queue.resource, lane=queue.lane, pk__gt=queue.pk
        ).exists()
        if newer:
            raise InvalidQueueAction(
                f"a newer {queue.resource} run exists; queue #{queue.pk}'s view of the upstream is out of date "
                "(run a full scan again)"
            )
        model = apps.get_model(get_resource(queue.connection.kind, queue.resource).model)
        held = queue.pending_deletions
        with without_nested_loops():
            n = missing_rows(model, queue).update(deleted_at=clock.now())
        queue.pending_deletions = 0
        queue.action_required = queue.state in (QueueState.PARTIAL, QueueState.FAILED)
        if not queue.action_required:
            queue.last_error = ""
        queue.save(update_fields=["pending_deletions", "action_required", "last_error", "updated_at"])
        activity_record(
            event="records.deletions_applied",
            queue=queue,
            actor=actor,
            message=f"{n} {queue.resource} record(s) marked deleted ({held} were held by the mass-deletion guard)",
            data={"count": n, "held": held},
        )
    return queue
