"""The queue row's lock: taken before any line of the queue changes (see lock_queue)."""

from __future__ import annotations

from django.db import connection as db_connection

from ..bulk import relaxed_allowed as bulk_relaxed_allowed
from ..models import SyncQueue


def is_postgres() -> bool:
    return db_connection.vendor == "postgresql"


def lock_queue(queue_id: int, *, relaxed_commit: bool = False, value: tuple[str, list] | None = None):
    """Take the queue row's lock. Lock order everywhere: the queue row first, then its lines; a
    transaction holding line locks and then waiting for the queue (or the reverse) would deadlock with
    cancel / force-done / webhook deliveries. On SQLite, IMMEDIATE transactions already serialise writers.
    ``relaxed_commit``: the engine's page and batch transactions also turn off the wait for the WAL flush
    here, in the same round trip (sync/bulk.py relaxed_commit says why that is safe). ``value``: a scalar
    subquery and its parameters, evaluated in the same statement (a saved round trip, not a fresher read:
    it sees the data as of the statement's start, even when the lock had to be waited for, and locks
    nothing it reads); its result is returned. PostgreSQL only: on SQLite the caller runs it apart.

    Raises SyncQueue.DoesNotExist when the queue row is gone (deleted, or being deleted: the lock waits for
    that transaction and then finds no row). The lines' key to their queue has no database constraint
    (sync.models.SyncQueueLine), so this is what keeps a line from being inserted for a deleted queue: every
    path that inserts lines takes this lock first, in the same transaction."""
    if not is_postgres():
        # IMMEDIATE transactions serialise SQLite's writers: a queue deleted before ours began is not there.
        if not SyncQueue.objects.filter(pk=queue_id).exists():
            raise SyncQueue.DoesNotExist(f"queue {queue_id} does not exist")
        return None
    relaxed = relaxed_commit and bulk_relaxed_allowed()
    if relaxed or value is not None:
        table = SyncQueue._meta.db_table
        columns, params = ["id"], []
        if relaxed:
            columns.append("set_config('synchronous_commit', 'off', true)")
        if value is not None:
            columns.append(f"({value[0]})")
            params.extend(value[1])
        with db_connection.cursor() as cursor:
            cursor.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE id = %s FOR UPDATE", [*params, queue_id])  # noqa: S608
            row = cursor.fetchone()
        if row is None:
            raise SyncQueue.DoesNotExist(f"queue {queue_id} does not exist")
        return row[-1] if value is not None else None
    if SyncQueue.objects.select_for_update().filter(pk=queue_id).values_list("id", flat=True).first() is None:
        raise SyncQueue.DoesNotExist(f"queue {queue_id} does not exist")
    return None
