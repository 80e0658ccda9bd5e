"""django-q2 entry points for Tiendanube. Ids in, services do the work, nothing raises out."""

from __future__ import annotations

import logging

from sync.models import Origin

from . import services

log = logging.getLogger(__name__)


def sync_store(connection_id: int, origin: str = Origin.SCHEDULE) -> str:
    """What each store's schedule (and manual / login / connect enqueues) call."""
    from connectors.models import Connection

    try:
        return services.store_sync(connection_id=connection_id, origin=origin).outcome
    except Connection.DoesNotExist:
        log.warning("tiendanube sync: store connection %s is gone", connection_id)
        return "gone"
    except Exception:
        log.exception("tiendanube sync of connection %s crashed", connection_id)
        return "crashed"


def fetch_record(connection_id: int, resource: str, record_id: int) -> str:
    try:
        return services.fetch_record(connection_id=connection_id, resource=resource, record_id=record_id)
    except Exception:
        log.exception("tiendanube webhook fetch %s/%s/%s failed", connection_id, resource, record_id)
        return "crashed"


def health_check() -> bool:
    try:
        return bool(services.health_check()["ok"])
    except Exception:
        log.exception("tiendanube health check crashed")
        return False
