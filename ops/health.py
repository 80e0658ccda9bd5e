"""/healthz and /readyz: what each check found, in a JSON body a person can read."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from . import selectors


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def check_cache() -> dict:
    key = f"synchub:readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", 30)
    try:
        if cache.get(key) != "1":
            raise RuntimeError("value written was not read back")
    finally:
        cache.delete(key)
    return {}


def check_broker() -> dict:
    return {"broker": selectors.broker_kind(), "queue_depth": selectors.broker_queue_depth()}


def check_worker() -> dict:
    limit = settings.READYZ_WORKER_MAX_AGE_SECONDS
    beat = selectors.heartbeat_summary(within_seconds=limit)
    age = beat["age_seconds"]
    if age is None:
        raise WorkerNotSeen("no qcluster has ever reported (start one: manage.py qcluster)")
    if age > limit:
        raise WorkerNotSeen(f"no qcluster seen for {int(age)} s (limit {limit} s)")
    return {"last_seen_seconds_ago": round(age, 1), "clusters": beat["alive"]}


class WorkerNotSeen(Exception):
    pass


CHECKS: dict[str, Callable[[], dict]] = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
    "worker": check_worker,
}


def readiness() -> tuple[bool, dict]:
    """Run every check; one failing does not stop the others. Errors say which check and what kind of
    failure, never a connection string (an exception's text can carry a URL with credentials)."""
    results: dict[str, dict] = {}
    for name, check in CHECKS.items():
        if name == "worker" and settings.READYZ_WORKER_MAX_AGE_SECONDS <= 0:
            results[name] = {"ok": True, "skipped": True}
            continue
        try:
            results[name] = {"ok": True, **check()}
        except WorkerNotSeen as exc:
            results[name] = {"ok": False, "error": str(exc)}
        except Exception as exc:
            results[name] = {"ok": False, "error": exc.__class__.__name__}
    ok = all(r["ok"] for r in results.values())
    failed = [name for name, r in results.items() if not r["ok"]]
    return ok, {"status": "ok" if ok else "unavailable", "failed": failed, "checks": results}
