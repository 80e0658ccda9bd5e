"""The Lightspeed Retail (X-Series) connector, as the registry sees it."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

from sync.policy import Every, RunPolicy
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
    identity_config=("domain_prefix",),
    reconnect_path=lambda conn: (
        f"/connectors/lightspeed/oauth/start/?organization={conn.organization_id}&name={quote(conn.name)}"
    ),
    policy=RunPolicy(
        # Every resource of every active connection each LIGHTSPEED_SYNC_MINUTES (0: no timed syncs).
        schedule=Every(dt.timedelta(hours=1), interval_from="connectors.lightspeed.conf.sync_interval"),
        backoff=(dt.timedelta(minutes=5), dt.timedelta(minutes=15), dt.timedelta(hours=1)),
        # No reauth_after: a 401/403 marks needs-reauth at once (the engine) and pauses every schedule of
        # the connection; outages (5xx, timeouts) only back off, they never ask for new credentials.
        resource_order=("customer_groups", "customers", "products"),
    ),
    demo="connectors.lightspeed.demo.run",
)
