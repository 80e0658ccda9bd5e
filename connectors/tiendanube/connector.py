"""The Tiendanube connector as the engine sees it: its client, its resources and its run policy. Tiers,
backoff, re-auth and the parallel cap are declared here and executed by sync.runpolicy."""

from __future__ import annotations

import datetime as dt

from sync.policy import Housekeeping, RunPolicy, Tiers
from sync.registry import Connector

from .client import TiendanubeClient
from .resources import RESOURCES

MINUTE = dt.timedelta(minutes=1)

POLICY = RunPolicy(
    # A store that changed within 2 h syncs every 5 min, within 3 days every 30 min, else every 6 h.
    schedule=Tiers(
        intervals={"high": 5 * MINUTE, "medium": 30 * MINUTE, "low": 360 * MINUTE},
        default="high",
        classify="connectors.tiendanube.stores.tier_after_run",
    ),
    backoff=(5 * MINUTE, 15 * MINUTE, 45 * MINUTE),
    reauth_after=3,
    reauth_after_setting="TIENDANUBE_REAUTH_AFTER_FAILURES",
    max_parallel=3,
    max_parallel_setting="TIENDANUBE_MAX_PARALLEL_SYNCS",
    resource_order=("products", "orders", "customers"),
    after_run="connectors.tiendanube.stores.post_sync",
    housekeeping=(
        Housekeeping("tiendanube:health", "connectors.tiendanube.tasks.health_check", 30 * MINUTE),
        Housekeeping(
            "tiendanube:purge-webhook-receipts",
            "connectors.tiendanube.webhooks.webhook_receipts_purge",
            dt.timedelta(days=1),
        ),
    ),
)

connector = Connector(
    kind="tiendanube",
    label="Tiendanube / Nuvemshop",
    client_class=TiendanubeClient,
    resources=dict(RESOURCES),
    secret_fields=("access_token",),
    config_fields=(),
    reconnect_path=lambda conn: f"/connectors/tiendanube/connect/?organization={conn.organization_id}",
    policy=POLICY,
    demo="connectors.tiendanube.demo.run",
)
