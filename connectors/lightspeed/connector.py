"""The Lightspeed Retail (X-Series) connector, as the registry sees it."""

from __future__ import annotations

from urllib.parse import quote

from sync.registry import Connector

from .client import LightspeedClient
from .resources import CustomerGroups, Customers, Products

connector = Connector(
    kind="lightspeed",
    label="Lightspeed Retail (X-Series)",
    client_class=LightspeedClient,
    resources={
        "customers": Customers(),
        "products": Products(),
        "customer_groups": CustomerGroups(),  # a new resource is one line here (docs/connectors/adding-a-resource.md)
    },
    secret_fields=("personal_token", "access_token", "refresh_token"),
    config_fields=("domain_prefix", "auth"),
    reconnect_path=lambda conn: (
        f"/connectors/lightspeed/oauth/start/?organization={conn.organization_id}&name={quote(conn.name)}"
    ),
    schedules="connectors.lightspeed.schedules.schedule_specs",
    demo="connectors.lightspeed.demo.run",
)
