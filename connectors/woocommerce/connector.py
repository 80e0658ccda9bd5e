"""The WooCommerce connector as the engine sees it."""

from __future__ import annotations

import datetime as dt

from sync.policy import Every, Housekeeping, RunPolicy
from sync.registry import Connector

from .client import WooClient
from .resources import RESOURCES

connector = Connector(
    kind="woocommerce",
    label="WooCommerce",
    client_class=WooClient,
    resources=dict(RESOURCES),
    secret_fields=("consumer_key", "consumer_secret", "webhook_secret"),
    identity_credentials=("consumer_key",),  # a REST key belongs to one store
    config_fields=("auth_in_query", "batch_size"),
    policy=RunPolicy(
        # Each connection chooses its interval (config sync_every_minutes; 0 or unset: no timed syncs).
        schedule=Every(dt.timedelta(hours=1), interval_from="connectors.woocommerce.selectors.sync_interval"),
        backoff=(dt.timedelta(minutes=5), dt.timedelta(minutes=15), dt.timedelta(hours=1)),
        # No reauth_after: a 401/403 marks needs-reauth at once (the engine) and pauses every schedule of
        # the connection; outages (5xx, timeouts) only back off, they never ask for new credentials.
        resource_order=("products", "customers", "orders"),
        housekeeping=(
            Housekeeping(
                "woocommerce:purge-webhook-deliveries",
                "connectors.woocommerce.services.webhook_deliveries_purge",
                dt.timedelta(days=1),
            ),
        ),
    ),
    demo="connectors.woocommerce.demo.run",
)
