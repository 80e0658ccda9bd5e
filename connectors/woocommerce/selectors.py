"""Reads for the WooCommerce app."""

from __future__ import annotations

import datetime as dt

from connectors.models import Connection


def webhook_connection(connection_id: int) -> Connection | None:
    """The active WooCommerce connection a webhook URL points at, or None (the view answers 404)."""
    return (
        Connection.objects.select_related("organization")
        .filter(pk=connection_id, kind="woocommerce", is_active=True)
        .first()
    )


def sync_interval(connection: Connection) -> dt.timedelta | None:
    """The run policy's interval for one connection (config ``sync_every_minutes``; None: not scheduled)."""
    minutes = int((connection.config or {}).get("sync_every_minutes") or 0)
    return dt.timedelta(minutes=minutes) if minutes > 0 else None


def webhook_setup(*, user, connection_id: int) -> dict | None:
    """What to type into WooCommerce's webhook form for a connection the user may see (None = 404)."""
    from django.conf import settings
    from django.urls import reverse

    from sync.selectors import connection_list

    conn = connection_list(user=user).filter(pk=connection_id, kind="woocommerce").first()
    if conn is None:
        return None
    path = reverse("woocommerce:webhook", args=[conn.pk])
    return {
        "connection": conn.pk,
        "delivery_url": settings.PUBLIC_BASE_URL.rstrip("/") + path,
        "secret_configured": bool(conn.credentials.get("webhook_secret")),
        "api_version": "WP REST API Integration v3",
        "topics": [f"{t}.{e}" for t in ("customer", "order", "product") for e in ("created", "updated", "deleted")],
    }
