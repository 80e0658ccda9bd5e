"""Starting runs: validation, idempotency keys, one active run per resource, the django-q2 task."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django_q.tasks import async_task

from core import clock

from ..activity import activity_record
from ..models import ActivityLevel, Lane, Origin, StatusState, SyncQueue
from .connections import cursor_for_run
from .errors import (
    ConnectionUnavailable,
    IdempotencyConflict,
    InvalidIdempotencyKey,
    RunSkipped,
    UnknownResourceError,
)
from .settle import status_upsert

IDEMPOTENCY_KEY_MAX = 255


def params_fingerprint(*, connection_id: int, resource: str, full_scan: bool, params: dict) -> str:
    blob = json.dumps({"c": connection_id, "r": resource, "f": full_scan, "p": params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class StartResult:
    queue: SyncQueue
    created: bool
    reason: str  # "created" | "idempotent" | "running" | "throttled"


def validate_resource(connection, resource: str) -> None:
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
    from ..admission import disabled_reason, run_policy, throttled_by

    validate_resource(connection, resource)
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
    cursor, upstream = cursor_for_run(connection, resource)
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
                cursor_from=cursor,
                upstream=upstream,
            )
            queue_touch(queue.pk)
            activity_record(
                event="queue.created",
                queue=queue,
                actor=actor,
                message=f"{origin} run of {resource} queued" + (" (full scan)" if full_scan else ""),
                data={"origin": origin, "full_scan": full_scan, "idempotency_key": key},
            )
            if enqueue:
                run_enqueue(queue.pk)
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
    from ..sinks import sink_for

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
        run_enqueue(queue.pk)  # resume a run whose worker died
    return StartResult(queue, False, "idempotent")


def enqueue_queue(queue_id: int) -> str | None:
    """Ask django-q2 to work a queue. Arguments are ids only; running it twice is safe. The ORM broker
    enqueues in the caller's transaction; a broker outside the database (Redis) is sent after the commit,
    so a worker never looks for a queue row it cannot see yet (it would find nothing and leave the run to
    the reaper). Returns the task id when sent at once."""
    from django_q.conf import Conf

    def send() -> str:
        return async_task("sync.tasks.run_queue", queue_id, task_name=f"queue-{queue_id}", group="sync-queues")

    if Conf.ORM or Conf.SYNC:
        return send()
    transaction.on_commit(send)
    return None


def run_enqueue(queue_id: int) -> str | None:
    """What every service calls: ``sync.services.enqueue_queue`` looked up when called, so that replacing
    it there (tests keep the worker away that way) reaches every caller, as before the package split."""
    return sys.modules[__package__].enqueue_queue(queue_id)


def queue_is_stalled(queue: SyncQueue, *, now: dt.datetime | None = None) -> bool:
    """No worker has touched an unfinished queue for longer than a lease."""
    now = now or clock.now()
    if not queue.is_active:
        return False
    if not queue.fetch_done and queue.fetch_lease_until is not None and queue.fetch_lease_until >= now:
        return False  # someone holds the fetch lease
    # updated_at moves on every claim, page and settle (always from core.clock, see queue_touch). A queue just
    # created is not stalled: its task is on the way.
    idle = dt.timedelta(seconds=settings.SYNC_LEASE_SECONDS)
    return queue.updated_at is None or queue.updated_at < now - idle


def queue_touch(queue_id: int) -> None:
    """Model.save() stamps updated_at from the wall clock; engine timing reads core.clock. Align them."""
    SyncQueue.objects.filter(pk=queue_id).update(updated_at=clock.now())
