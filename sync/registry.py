"""The one door between the engine and the connectors. Kinds are dotted paths from settings.SYNC_CONNECTORS
(after healthchecks' transports and Saleor's plugin manager): importing a kind is lazy, so one broken
connector cannot stop the others from loading, and nothing in sync/ imports a connector module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.conf import settings
from django.utils.module_loading import import_string

from core.paging import FetchContext

from .policy import RunPolicy

if TYPE_CHECKING:
    from django.db.models import Model

# kind -> dotted path of its Connector declaration. A dict of our own so tests can register fakes.
KINDS: dict[str, str] = dict(settings.SYNC_CONNECTORS)


def connection_model() -> type[Model]:
    """The Connection model (settings.SYNC_CONNECTION_MODEL), looked up the way Django finds AUTH_USER_MODEL."""
    return apps.get_model(settings.SYNC_CONNECTION_MODEL)


class UnknownKind(LookupError):
    pass


class UnknownResource(LookupError):
    pass


@dataclass
class Connector:
    """What the engine and the interfaces need to know about one upstream kind."""

    kind: str
    label: str
    client_class: type
    resources: dict[str, Any] = field(default_factory=dict)
    # Keys of Connection.credentials; write-only everywhere (admin, API).
    secret_fields: tuple[str, ...] = ()
    # Keys of Connection.config shown and editable in the admin/API.
    config_fields: tuple[str, ...] = ()
    # For OAuth connectors: where a staff user re-authorises a connection (shown when needs_reauth).
    reconnect_path: Callable[[Any], str] | None = None
    # Dotted path, imported only when used: the demo's ``run(ctx) -> list[dict]`` (manage.py demo).
    demo: str = ""
    # When and how its runs happen (sync.policy): schedules, backoff, re-auth, the parallel cap, resource
    # order, the after-run hook. Executed by sync.runpolicy.
    policy: RunPolicy = field(default_factory=RunPolicy)
    # Where a run's records go; None is the table sink (upserts into each resource's domain model).
    sink: Any = None
    # What says WHICH upstream account a connection reads, besides its kind, base URL and external account
    # id (invariant 18): credential keys (WooCommerce's consumer key belongs to one store) and config keys
    # (Lightspeed's domain prefix). Changing any of them resets the connection's cursors.
    identity_credentials: tuple[str, ...] = ()
    identity_config: tuple[str, ...] = ()

    def hook(self, name: str) -> Callable | None:
        """The callable behind one of the dotted-path fields above, or None when it is not declared."""
        path = getattr(self, name)
        return import_string(path) if path else None

    def client(self, connection) -> Any:
        return self.client_class(connection)

    def resource(self, name: str) -> Any:
        try:
            return self.resources[name]
        except KeyError:
            raise UnknownResource(
                f"{self.kind} has no resource {name!r}; known: {', '.join(sorted(self.resources))}"
            ) from None

    def test_connection(self, connection) -> str:
        """Make one cheap authenticated call; return what the upstream said. Raises UpstreamError."""
        client = self.client(connection)
        try:
            first = next(iter(self.resources.values()))
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


def get_resource(kind: str, name: str) -> Any:
    return get_connector(kind).resource(name)


def kind_choices() -> list[tuple[str, str]]:
    return [(k, k.title()) for k in KINDS]
