"""Registry of connector kinds, as dotted paths (after healthchecks' transports): importing a kind is lazy,
so one broken connector cannot stop the others from loading."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from sync.models import SyncQueue

    from .base import Client, Resource
    from .models import Connection

KINDS: dict[str, str] = {
    "woocommerce": "connectors.woocommerce.connector.connector",
    "lightspeed": "connectors.lightspeed.connector.connector",
    "tiendanube": "connectors.tiendanube.connector.connector",
    "mulesoft": "connectors.mulesoft.connector.connector",
    "mdm": "connectors.mdm.connector.connector",
}


class UnknownKind(LookupError):
    pass


class UnknownResource(LookupError):
    pass


@dataclass
class Connector:
    """What the engine and the interfaces need to know about one upstream kind."""

    kind: str
    label: str
    client_class: type[Client]
    resources: dict[str, Resource] = field(default_factory=dict)
    # Keys of Connection.credentials; write-only everywhere (admin, API).
    secret_fields: tuple[str, ...] = ()
    # Keys of Connection.config shown and editable in the admin/API.
    config_fields: tuple[str, ...] = ()
    # For OAuth connectors: where a staff user re-authorises a connection (shown when needs_reauth).
    reconnect_path: Callable[[Connection], str] | None = None
    # Optional: ``run_gate(queue)`` is a context manager yielding True (run the queue now) or False (hold it
    # back; it stays active and the reaper resumes it once idle for a lease). sync.gates applies it to every
    # engine run started through a task or manage.py (Tiendanube: the parallel store-sync cap).
    run_gate: Callable[[SyncQueue], AbstractContextManager[bool]] | None = None

    def client(self, connection: Connection) -> Client:
        return self.client_class(connection)

    def resource(self, name: str) -> Resource:
        try:
            return self.resources[name]
        except KeyError:
            raise UnknownResource(
                f"{self.kind} has no resource {name!r}; known: {', '.join(sorted(self.resources))}"
            ) from None

    def test_connection(self, connection: Connection) -> str:
        """Make one cheap authenticated call; return what the upstream said. Raises UpstreamError."""
        client = self.client(connection)
        try:
            first = next(iter(self.resources.values()))
            from .base import FetchContext

            page = first.fetch_page(FetchContext(client=client, cursor="", token=None, full_scan=True))
            return f"OK: {first.name} answered with {len(page.records)} record(s) on the first page"
        finally:
            client.close()


@cache
def get_connector(kind: str) -> Connector:
    try:
        path = KINDS[kind]
    except KeyError:
        raise UnknownKind(f"unknown connector kind {kind!r}; known: {', '.join(sorted(KINDS))}") from None
    return import_string(path)


def get_resource(kind: str, name: str) -> Resource:
    return get_connector(kind).resource(name)


def kind_choices() -> list[tuple[str, str]]:
    return [(k, k.title()) for k in KINDS]
