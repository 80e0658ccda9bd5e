"""The chaos suite's connector kind ("chaoswoo"): the bench Woo-like connector with a timestamp cursor
(the latest ``date_modified_gmt`` a run covered), so every fault can also check the cursor stays safe."""

from __future__ import annotations

from bench.connector import BenchWooClient, BenchWooCustomers
from sync.registry import Connector

KIND = "chaoswoo"
PATH = "tests.chaos.connector.connector"


class ChaosClient(BenchWooClient):
    kind = KIND


class ChaosCustomers(BenchWooCustomers):
    cursor_kind = "timestamp"

    def record_cursor(self, record: dict) -> str | None:
        value = record.get("date_modified_gmt")
        return f"{value}Z" if isinstance(value, str) and value else None


connector = Connector(
    kind=KIND,
    label="Chaos Woo-like",
    client_class=ChaosClient,
    resources={"customers": ChaosCustomers()},
    config_fields=("fetch_concurrency", "batch_size"),
)


def register() -> None:
    from sync import registry

    registry.KINDS[KIND] = PATH
    registry.get_connector.cache_clear()
