"""Reads for the WooCommerce app."""

from __future__ import annotations

from connectors.models import Connection


def webhook_connection(connection_id: int) -> Connection | None:
    """The active WooCommerce connection a webhook URL points at, or None (the view answers 404)."""
    return (
        Connection.objects.select_related("organization")
        .filter(pk=connection_id, kind="woocommerce", is_active=True)
        .first()
    )


def scheduled_connections() -> list[Connection]:
    """Active connections that asked for timed syncs (config ``sync_every_minutes`` > 0)."""
    return [
        c
        for c in Connection.objects.filter(kind="woocommerce", is_active=True).order_by("pk")
        if int(c.config.get("sync_every_minutes") or 0) > 0
    ]
