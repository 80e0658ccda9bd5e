"""Health: does each store's token work (one cheap call), is the scheduler alive, are settings complete."""

from __future__ import annotations

from django.core.cache import cache

from connectors.base import UpstreamError
from connectors.models import Connection
from core import clock

from . import conf, selectors, stores
from .connector import connector
from .selectors import KIND


def token_diagnose(connection: Connection) -> dict:
    """One cheap authenticated call (GET store). Says whether the token works, never what it is."""
    result = {
        "connection": connection.pk,
        "store_id": connection.external_account_id,
        "has_token": False,
        "valid": False,
        "status": None,
        "detail": "",
    }
    if not connection.has_credentials or not connection.credentials.get("access_token"):
        result["detail"] = "no token stored: connect the store"
        return result
    result["has_token"] = True
    client = connector.client(connection)
    client.max_tries = 1
    try:
        client.get_json("store", params={"fields": "id"})
        result.update(valid=True, status=200, detail="token accepted")
        Connection.objects.filter(pk=connection.pk).update(health="ok", last_checked_at=clock.now())
    except UpstreamError as exc:
        result.update(status=exc.status, detail=str(exc)[:300])
        if exc.status == 401:
            result["detail"] = "token rejected (401): the app was uninstalled or a newer token was issued; reconnect"
            stores.store_mark_needs_reauth(connection, reason="the token was rejected (401)")
        Connection.objects.filter(pk=connection.pk).update(last_checked_at=clock.now())
    finally:
        client.close()
    return result


def health_check(*, connections=None) -> dict:
    """Database, scheduler alive, required settings, token validity per store. Cached for the endpoint."""
    from django.db import connection as db

    report: dict = {"checked_at": clock.now().isoformat()}
    try:
        with db.cursor() as cur:
            cur.execute("SELECT 1")
        report["database"] = {"ok": True}
    except Exception as exc:
        report["database"] = {"ok": False, "detail": exc.__class__.__name__}
    report["scheduler"] = {"ok": selectors.scheduler_alive()}
    missing = conf.get().missing
    report["settings"] = {"ok": not missing, "missing": missing}
    if connections is None:
        connections = Connection.objects.filter(kind=KIND, is_active=True)
    stores = [token_diagnose(conn) for conn in connections]
    report["stores"] = stores
    report["ok"] = all(report[k]["ok"] for k in ("database", "scheduler", "settings")) and all(
        s["valid"] for s in stores
    )
    cache.set(selectors.HEALTH_CACHE_KEY, report, timeout=2 * 3600)
    return report
