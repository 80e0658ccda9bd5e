"""Lightspeed reads, scoped to the caller's organizations (another organization's rows are not found)."""

from __future__ import annotations

from connectors.models import Connection
from sync.models import SyncQueue
from sync.selectors import connection_list, queue_list


def connection_get(*, user, connection_id: int) -> Connection:
    """Raises Connection.DoesNotExist for a connection the user may not see (-> 404)."""
    return connection_list(user=user).filter(kind="lightspeed").get(pk=connection_id)


def queue_get(*, user, queue_id: int) -> SyncQueue:
    return queue_list(user=user).filter(connection__kind="lightspeed").get(pk=queue_id)
