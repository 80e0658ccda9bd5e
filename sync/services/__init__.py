"""Writes. Every interface (admin, API, manage.py, tasks, webhooks) changes sync state through here.

One module per concern; import from the package (``from sync import services`` or ``from sync.services
import X``), which re-exports every public name:

- ``errors``: the SyncServiceError family the interfaces translate into 4xx.
- ``runs``: starting a run (validation, idempotency keys, one active run per resource), the django-q2 task.
- ``webhooks``: records pushed to us, as lines on the webhook lane.
- ``lines``: records becoming lines (keyed once, deduplicated, newer snapshots reset to draft), retry backoff.
- ``state``: **where a line changes state**: ``lines_move`` / ``lines_insert`` move lines and update the
  queue's counters together; ``derive_queue_state`` reads the queue's state off those counters.
- ``locks``: the queue row's lock (queue first, then its lines).
- ``queue_actions``: retry, force done, cancel, apply the deletions the mass-deletion guard held.
- ``settle``: ``queue_finalize`` (final state, SyncStatus, cursor, activity, signal), ``status_upsert``.
- ``reaper``: expired leases back to draft, stalled queues resumed, old queues purged.
- ``connections``: needs-reauth and the run result on the connection's health; the connection's upstream
  identity (a cursor is bound to one upstream; ``connection_reset_cursors``).
- ``pagememo``: page memos, the source hashes of a page's records by the page's digest (the engine's).
- ``system_settings``: ``setting_set``.
"""

from __future__ import annotations

from .connections import (
    connection_mark_needs_reauth,
    connection_record_result,
    connection_reset_cursors,
    identity_changes,
    upstream_fingerprint,
    upstream_identity,
)
from .errors import (
    ConnectionUnavailable,
    IdempotencyConflict,
    InvalidIdempotencyKey,
    InvalidQueueAction,
    RunActive,
    RunSkipped,
    SyncServiceError,
    UnknownResourceError,
)
from .lines import Keyed, lines_add, record_key, retry_delay
from .locks import is_postgres, lock_queue
from .pagememo import (
    pagememo_bodies,
    pagememo_body_key,
    pagememo_forget_bodies,
    pagememo_key,
    pagememo_lookup,
    pagememo_prune,
    pagememo_revision,
    pagememo_save,
)
from .queue_actions import queue_apply_deletions, queue_cancel, queue_force_done, queue_retry
from .reaper import lines_reap, queues_purge, queues_resume_stalled
from .runs import (
    IDEMPOTENCY_KEY_MAX,
    StartResult,
    enqueue_queue,
    params_fingerprint,
    queue_is_stalled,
    queue_touch,
    sync_start,
)
from .settle import FINAL_STATES, current_cursor, cursor_max, queue_finalize, status_upsert
from .state import (
    COUNTER_FIELDS,
    LineBlock,
    NewLine,
    derive_queue_state,
    line_failed_record,
    lines_insert,
    lines_move,
    queue_recount,
    queue_update_with,
)
from .system_settings import setting_set
from .webhooks import sync_enqueue_records

__all__ = [
    "COUNTER_FIELDS",
    "FINAL_STATES",
    "IDEMPOTENCY_KEY_MAX",
    "ConnectionUnavailable",
    "IdempotencyConflict",
    "InvalidIdempotencyKey",
    "InvalidQueueAction",
    "Keyed",
    "LineBlock",
    "NewLine",
    "RunActive",
    "RunSkipped",
    "StartResult",
    "SyncServiceError",
    "UnknownResourceError",
    "connection_mark_needs_reauth",
    "connection_record_result",
    "connection_reset_cursors",
    "identity_changes",
    "upstream_fingerprint",
    "upstream_identity",
    "current_cursor",
    "cursor_max",
    "derive_queue_state",
    "enqueue_queue",
    "is_postgres",
    "line_failed_record",
    "lines_add",
    "lines_insert",
    "queue_update_with",
    "lines_move",
    "lines_reap",
    "lock_queue",
    "pagememo_bodies",
    "pagememo_body_key",
    "pagememo_forget_bodies",
    "pagememo_key",
    "pagememo_lookup",
    "pagememo_prune",
    "pagememo_revision",
    "pagememo_save",
    "params_fingerprint",
    "queue_apply_deletions",
    "queue_cancel",
    "queue_finalize",
    "queue_force_done",
    "queue_is_stalled",
    "queue_recount",
    "queue_retry",
    "queue_touch",
    "queues_purge",
    "queues_resume_stalled",
    "record_key",
    "retry_delay",
    "setting_set",
    "status_upsert",
    "sync_enqueue_records",
    "sync_start",
]
