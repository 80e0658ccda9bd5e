"""django-q2 entry points. Thin: ids in, services/engine do the work, nothing raises out."""

from __future__ import annotations

import logging

from . import gates, services
from .registry import connection_model

log = logging.getLogger(__name__)


def run_queue(queue_id: int) -> str | None:
    return gates.run_queue_gated(queue_id)


def sync_connection(connection_id: int, origin: str = "schedule") -> str:
    """What a tiered schedule (and manual / login / connect enqueues) call: every resource of one connection
    in the policy's order, inside one run slot."""
    from .connection_runs import connection_sync

    Connection = connection_model()
    try:
        return connection_sync(connection_id=connection_id, origin=origin).outcome
    except Connection.DoesNotExist:
        log.warning("connection run: connection %s is gone", connection_id)
        return "gone"
    except Exception:
        log.exception("connection run of %s crashed", connection_id)
        return "crashed"


def schedule_tick(kind: str) -> dict:
    """The one schedule of a tiered kind (``<kind>:tick``, every minute): enqueue its due runs in bulk."""
    from .scheduler import tick

    return tick(kind).as_dict()


def reap() -> dict:
    return services.lines_reap()


def purge(days: int | None = None) -> int:
    return services.queues_purge(days=days)


def start_scheduled_sync(connection_id: int, resource: str, full_scan: bool = False) -> int | None:
    """What a per-connection schedule calls: start a run (or join the running one). Never raises.
    ``full_scan``: the reconciliation schedule (sync.runpolicy.reconcile_specs); never throttled."""
    Connection = connection_model()
    try:
        connection = Connection.objects.get(pk=connection_id)
        result = services.sync_start(
            connection=connection, resource=resource, origin="schedule", full_scan=full_scan, force=full_scan
        )
        return result.queue.pk
    except Connection.DoesNotExist:
        log.warning("scheduled sync: connection %s is gone", connection_id)
    except services.SyncServiceError as exc:
        from .activity import activity_record

        activity_record(
            event="schedule.skipped",
            connection=connection,
            level="warning",
            message=f"scheduled {resource} sync skipped: {exc}",
        )
        services.status_upsert(connection=connection, resource=resource, state="skipped", last_error=str(exc))
    except Exception:
        log.exception("scheduled sync of connection %s/%s failed to start", connection_id, resource)
    return None
