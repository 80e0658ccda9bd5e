"""Run a queue through the run-policy gate (sync.runpolicy.run_gate: the kind's parallel cap).

Every way a queue reaches a worker (trigger, Sync now, schedule, retry, the reaper's resume) is the task
``sync.tasks.run_queue``, and manage.py sync_run runs in the foreground: both come through here, so a
kind's declared cap (RunPolicy.max_parallel) holds for all of them. The gate keeps its state
in the database; a held-back queue stays active and the reaper re-enqueues it after a lease of idleness."""

from __future__ import annotations

import contextlib
import logging

from . import engine, runpolicy
from .models import SyncQueue

log = logging.getLogger(__name__)

HELD_BACK = "held_back"


def run_queue_gated(queue_id: int, **run_kwargs) -> str | None:
    """engine.run_queue inside the policy's gate. Returns the engine's result, or HELD_BACK."""
    queue = SyncQueue.objects.select_related("connection").filter(pk=queue_id).first()
    gate = None
    if queue is not None and queue.is_active:
        try:
            runpolicy.policy_of(queue.connection.kind)
            gate = runpolicy.run_gate
        except Exception:  # unknown kind, broken import: engine.run_queue records the unrunnable queue
            gate = None
    if gate is None:
        return engine.run_queue(queue_id, **run_kwargs)
    with contextlib.ExitStack() as stack:
        try:
            allowed = stack.enter_context(gate(queue))
        except Exception:  # tasks never raise; the queue stays active and the reaper resumes it
            log.exception("queue %s: the %s run gate failed", queue_id, queue.connection.kind)
            return HELD_BACK
        if not allowed:
            log.info("queue %s held back by the %s connector", queue_id, queue.connection.kind)
            return HELD_BACK
        return engine.run_queue(queue_id, **run_kwargs)
