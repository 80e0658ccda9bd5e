"""Records pushed to us (webhooks): lines on the connection's webhook lane, one active queue per resource."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from ..activity import activity_record
from ..models import Lane, LineAction, Origin, SyncQueue
from .lines import lines_add
from .runs import queue_touch, run_enqueue, validate_resource


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

    validate_resource(connection, resource)
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
                    queue_touch(queue.pk)
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
                    run_enqueue(queue.pk)
                return queue
        except IntegrityError:
            continue  # another delivery created the webhook queue first; append to it
    raise RuntimeError("could not open a webhook queue")
