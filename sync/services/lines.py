"""Records becoming lines: keyed once, deduplicated by external id within a queue, a newer snapshot of a
line already there resetting it to draft. The states themselves move in state.py."""

from __future__ import annotations

import contextlib
import contextvars
import random
import uuid
from typing import NamedTuple

from django.conf import settings
from django.db import connection as db_connection
from django.db.models import Q

from core import clock

from ..bulk import (
    UNIDENTIFIED_LINE_PREFIX,
    UNSTORABLE_ERROR,
    same_record,
    unstorable,
    unstorable_line_id,
    without_nul,
)
from ..models import LineAction, LineState, SyncQueue, SyncQueueLine
from .locks import lock_queue
from .state import line_failed_record, lines_insert, lines_move


def retry_delay(attempt: int) -> float:
    """Exponential backoff with jitter: base·2^(attempt-1) ±20 % (1 s, 2 s, 4 s by default)."""
    base = settings.SYNC_RETRY_BASE_SECONDS
    if base <= 0:
        return 0.0
    return base * (2 ** max(attempt - 1, 0)) * random.uniform(0.8, 1.2)


class Keyed(NamedTuple):
    """A record with its external id, asked of the resource once per record: ``external_id`` is None (and
    ``key_error`` says why) for a record the resource cannot identify. A NamedTuple (immutable, like the frozen
    dataclass it was): one is made for every record of every page, in the fetch thread a first sync waits on,
    and it is made in 0.23 us against 0.66 us."""

    record: object
    external_id: str | None
    key_error: str = ""


def record_key(resource, record) -> Keyed:
    if isinstance(record, Keyed):
        return record
    try:
        ext = resource.external_id(record)
    except Exception as exc:  # a record we cannot even key fails on its own line (lines_add)
        return Keyed(record, None, str(exc))
    if ext is not None and "\x00" in ext and db_connection.vendor == "postgresql":
        # No line, row or error text can hold it there: before, it failed the whole run, not its own line.
        return Keyed(record, None, "the external id contains a NUL character (\\u0000), which PostgreSQL cannot store")
    return Keyed(record, ext)


def lines_add(queue: SyncQueue, resource, records: list, *, action: str | None = None) -> int:
    """Insert records (raw, or already Keyed) as draft lines, deduplicated by external id within the
    queue. A record seen again with a different payload replaces the snapshot and goes back to draft.
    Call inside a transaction. Returns the number of lines that became draft (new or reset)."""
    lock_queue(queue.pk)
    now = clock.now()
    incoming: dict[str, tuple[object, str]] = {}
    invalid: list[SyncQueueLine] = []
    for index, item in enumerate(records):
        keyed = record_key(resource, item)
        record, ext = keyed.record, keyed.external_id
        if ext is None:
            invalid.append(
                SyncQueueLine(
                    queue=queue,
                    # Unique within the queue even for two deliveries at the same instant.
                    external_id=f"{UNIDENTIFIED_LINE_PREFIX}{index}:{uuid.uuid4().hex}",
                    payload=without_nul(record) if isinstance(record, dict) else {"value": without_nul(record)},
                    state=LineState.FAILED,
                    attempts=1,
                    last_error=f"cannot identify record: {keyed.key_error}",
                    updated_at=now,
                )
            )
            continue
        if unstorable(record):  # PostgreSQL cannot hold it: its own failed line, nothing else is refused
            invalid.append(
                SyncQueueLine(
                    queue=queue,
                    external_id=unstorable_line_id(ext, uuid.uuid4().hex[:12]),
                    payload=without_nul(record),
                    state=LineState.FAILED,
                    attempts=1,
                    last_error=f"{ext}: {UNSTORABLE_ERROR}"[:2000],
                    updated_at=now,
                )
            )
            continue
        line_action = action or (LineAction.DELETE if resource.is_deleted(record) else LineAction.UPSERT)
        incoming[ext] = (record, line_action)
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
        for ext, (rec, act) in incoming.items()
        if ext not in existing
    ]
    lines_insert(new_lines + invalid)
    reset = moved = 0
    for ext, line in existing.items():
        record, act = incoming[ext]
        if line.action == act and same_record(line.payload, record):
            continue  # overlap: the same snapshot again
        if line.state == LineState.CANCELLED and queue.cancelled_at is not None:
            continue  # the queue was cancelled; do not revive its lines
        # A line a worker holds is taken back too (its token no longer matches, so that worker cannot
        # mark it done): the newer snapshot must be written, not lost. The state and token we read are
        # the compare-and-set: a worker claiming or settling the line meanwhile keeps it.
        n = lines_move(
            queue.pk,
            from_state=line.state,
            to_state=LineState.DRAFT,
            lines=Q(pk=line.pk, lease_token=line.lease_token),
            payload=record,
            action=act,
            attempts=0,
            next_attempt_at=None,
            last_error="",
            lease_until=None,
            lease_token="",
            updated_at=now,
        )
        moved += n
        reset += n if line.state != LineState.DRAFT else 0
    if not (new_lines or invalid or moved):
        SyncQueue.objects.filter(pk=queue.pk).update(updated_at=now)  # a delivery still shows the queue alive
    for line in invalid:
        line_failed_record(queue, error=line.last_error)
    return len(new_lines) + reset


_SWEEP = contextvars.ContextVar("sync_lines_sweep", default=True)


@contextlib.contextmanager
def lines_sweep_skipped():
    """For a caller that deletes queues whose locks it took before deleting their lines (the purge): no
    worker can have inserted lines since, so lines_of_deleted_queue's look-up per queue (2,000 queues: 1.72
    against 0.43 s, measured) is skipped."""
    token = _SWEEP.set(False)
    try:
        yield
    finally:
        _SWEEP.reset(token)


def lines_of_deleted_queue(sender, instance: SyncQueue, **kwargs) -> None:
    """post_delete of a SyncQueue (connected in SyncConfig.ready): delete the lines it still has. The lines'
    key to their queue has no database constraint (sync.models.SyncQueueLine), and the ORM's cascade deletes
    only the lines it read before its transaction: a group of lines committed in between (a worker holding
    the queue's lock while the delete waited for it) would outlive the queue. This runs in the deleting
    transaction, after the queue's row is gone, so it sees those lines; a worker that locks the queue later
    finds no row (lock_queue raises) and inserts nothing."""
    if _SWEEP.get():
        SyncQueueLine.objects.filter(queue_id=instance.pk).delete()
