"""django-q2 entry points for Tiendanube. Ids in, services do the work, nothing raises out. Store syncs
are the engine's whole-connection runs (sync.tasks.sync_connection)."""

from __future__ import annotations

import logging

from sync.models import Origin

log = logging.getLogger(__name__)


def sync_store(connection_id: int, origin: str = Origin.SCHEDULE) -> str:
    """Kept for tasks enqueued before the run policies moved into the engine (drains after a deploy)."""
    from sync.tasks import sync_connection

    return sync_connection(connection_id, origin)


def fetch_record(connection_id: int, resource: str, record_id: int) -> str:
    from .webhooks import fetch_record as fetch

    try:
        return fetch(connection_id=connection_id, resource=resource, record_id=record_id)
    except Exception:
        log.exception("tiendanube webhook fetch %s/%s/%s failed", connection_id, resource, record_id)
        return "crashed"


def health_check() -> bool:
    from .health import health_check as check

    try:
        return bool(check()["ok"])
    except Exception:
        log.exception("tiendanube health check crashed")
        return False
