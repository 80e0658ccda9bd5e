"""The WooCommerce connector as the engine sees it."""

from __future__ import annotations

from sync.registry import Connector

from .client import WooClient
from .resources import RESOURCES

connector = Connector(
    kind="woocommerce",
    label="WooCommerce",
    client_class=WooClient,
    resources=dict(RESOURCES),
    secret_fields=("consumer_key", "consumer_secret", "webhook_secret"),
    config_fields=("auth_in_query", "batch_size"),
    schedules="connectors.woocommerce.schedules.schedule_specs",
    demo="connectors.woocommerce.demo.run",
)
