"""django-q2 entry points for WooCommerce. Ids in, services do the work, nothing raises out."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def refetch_record(connection_id: int, resource: str, record_id: int) -> str:
    """A webhook said this record may have changed: fetch it and store what the store answers."""
    from .services import webhook_refetch

    try:
        return webhook_refetch(connection_id=connection_id, resource=resource, record_id=record_id)
    except Exception:
        log.exception("woocommerce webhook re-fetch %s/%s/%s failed", connection_id, resource, record_id)
        return "crashed"
