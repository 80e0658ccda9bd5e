"""Run a queue through its connector's optional ``run_gate`` (sync.registry.Connector).

Every way a queue reaches a worker (trigger, Sync now, schedule, retry, the reaper's resume) is the task
``sync.tasks.run_queue``, and manage.py sync_run runs in the foreground: both come through here, so a
connector's limit (Tiendanube's cap on parallel store syncs) holds for all of them. The gate keeps its state
in the database; a held-back queue stays active and the reaper re-enqueues it after a lease of idleness."""

from __future__ import annotations

import contextlib
import logging

from . import engine
from .models import SyncQueue

log = logging.getLogger(__name__)

HELD_BACK = "held_back"


def run_queue_gated(queue_id: int, **run_kwargs) -> str | None:
    """engine.run_queue inside the connector's gate. Returns the engine's result, or HELD_BACK."""
    from sync.registry import get_connector

    queue = SyncQueue.objects.select_related("connection").filter(pk=queue_id).first()
    gate = None
    if queue is not None and queue.is_active:
        try:
            gate = get_connector(queue.connection.kind).run_gate
        except Exception:  # unknown kind, broken import: engine.run_queue records the unrunnable queue
            gate = None
    if gate is None:
        return engine.run_queue(queue_id, **run_kwargs)
    with contextlib.ExitStack() as stack:
        try:
            allowed = stack.enter_context(gate(queue))
        except Exception:  # tasks never raise; the queue stays active and the reaper resumes it
            log.exception("queue %s: the %s connector's run gate failed", queue_id, queue.connection.kind)
            return HELD_BACK
        if not allowed:
            log.info("queue %s held back by the %s connector", queue_id, queue.connection.kind)
            return HELD_BACK
        return engine.run_queue(queue_id, **run_kwargs)
