"""The Tiendanube connector as the engine sees it."""

from __future__ import annotations

from sync.registry import Connector

from .client import TiendanubeClient
from .resources import RESOURCES


def _run_gate(queue):
    from .services import queue_run_gate  # services imports much of the project; load it on first use

    return queue_run_gate(queue)


connector = Connector(
    kind="tiendanube",
    label="Tiendanube / Nuvemshop",
    client_class=TiendanubeClient,
    resources=dict(RESOURCES),
    secret_fields=("access_token",),
    config_fields=(),
    reconnect_path=lambda conn: f"/connectors/tiendanube/connect/?organization={conn.organization_id}",
    run_gate=_run_gate,
    schedules="connectors.tiendanube.schedules.schedule_specs",
    demo="connectors.tiendanube.demo.run",
)
