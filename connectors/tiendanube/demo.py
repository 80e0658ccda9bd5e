"""Demo: two sandbox stores connected through the real OAuth flow (the browser step is simulated by
following the redirect in code), synced once for the report, then left to sync on their own under a
short-lived `manage.py qcluster` (skip with TIENDANUBE_DEMO_QCLUSTER=false)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.test import Client
from django_q.models import OrmQ, Schedule

from connectors.models import Connection
from connectors.sandbox.server import serve
from core import clock
from sync.connection_runs import connection_sync, run_task_name
from sync.models import QueueState, RunSchedule, SyncQueue
from sync.runpolicy import resource_order, tick_name

from .sandbox import SANDBOX_SECRET, TiendanubeSandbox

STORES = ("1001", "1002")


def _configure(base: str) -> None:
    # conf.py reads the environment on every call; a qcluster started below inherits these too.
    os.environ.update(
        {
            "TIENDANUBE_APP_ID": "4242",
            "TIENDANUBE_CLIENT_SECRET": SANDBOX_SECRET,
            "TIENDANUBE_AUTHORIZE_URL": base + "/apps/{app_id}/authorize",
            "TIENDANUBE_TOKEN_URL": base + "/apps/authorize/token",
            "TIENDANUBE_API_URL": base + "/v1/",
            "TIENDANUBE_USER_AGENT": "SyncHub demo (demo@example.com)",
        }
    )


def _connect(client: Client, organization, store_id: str) -> Connection:
    start = client.get(f"/connectors/tiendanube/connect/?organization={organization.pk}")
    if start.status_code != 302:
        raise RuntimeError(f"connect start answered {start.status_code}: {start.content[:200]!r}")
    redirect = requests.get(start["Location"] + f"&store={store_id}", allow_redirects=False, timeout=10)
    parts = urlsplit(redirect.headers["Location"])
    done = client.get(f"{parts.path}?{parts.query}&format=json")
    if done.status_code != 200:
        raise RuntimeError(f"OAuth callback answered {done.status_code}: {done.content[:200]!r}")
    return Connection.objects.get(kind="tiendanube", external_account_id=store_id)


def run(ctx) -> list[dict]:
    # Records changed over the last ~4 hours: the stores land in the high tier (every 5 minutes).
    recent = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=250)
    sandbox = TiendanubeSandbox(
        stores=len(STORES),
        records=250,
        base_time=recent,
        redirect_uri="http://127.0.0.1/connectors/tiendanube/oauth/callback/",
    )
    base = ctx.stack.enter_context(serve(sandbox.app))
    _configure(base)
    ctx.say(f"Tiendanube sandbox at {base} (stores {', '.join(STORES)}; bucket 40, 2/s)")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(ctx.user)
    rows: list[dict] = []
    conns = []
    for store_id in STORES:
        conn = _connect(client, ctx.organization, store_id)
        conns.append(conn)
        ctx.say(
            f"store {store_id} connected through OAuth -> connection #{conn.pk}, schedule tiendanube:store:{conn.pk}"
        )
        started = time.monotonic()
        result = connection_sync(connection_id=conn.pk, origin="manual", actor=ctx.user)
        seconds = round(time.monotonic() - started, 2)
        for resource, state in result.states.items():
            q = SyncQueue.objects.filter(connection=conn, resource=resource).order_by("-id").first()
            rows.append(
                {
                    "connector": "tiendanube",
                    "resource": f"{store_id}/{resource}",
                    "records": q.done_count if q else 0,
                    "seconds": seconds,
                    "state": state,
                    "note": result.error[:80],
                }
            )
    rows[-1]["note"] = rows[-1]["note"] or f"429s seen: {sandbox.count_429}"
    ctx.upstreams["tiendanube"] = {"sandbox": sandbox, "connections": conns}
    if os.environ.get("TIENDANUBE_DEMO_QCLUSTER", "true").lower() in ("1", "true", "yes"):
        rows.extend(_run_qcluster(ctx, conns))
    return rows


def drop_enqueued_runs(conns: list[Connection]) -> int:
    """The connect flow enqueued a first sync of each store; the report already ran it, so drop those
    (redundant) broker tasks and let the schedules alone drive the cluster. Left queued, the cluster ran
    them first (origin "manual"), each moved its store's next sync 5 minutes on, and the tick found nothing
    due: the scheduled step then always said "not yet" (the names matched here had gone stale)."""
    names = {run_task_name(c.pk) for c in conns}
    dropped = 0
    for task in OrmQ.objects.all():
        if task.name() in names:
            task.delete()
            dropped += 1
    return dropped


def _run_qcluster(ctx, conns: list[Connection], timeout: float = 90.0) -> list[dict]:
    """Make the stores' schedules due, start a qcluster, wait until each store synced on its own."""
    drop_enqueued_runs(conns)
    # What the cluster runs from here on: queues newer than this one (ids, not clocks).
    last_id = SyncQueue.objects.order_by("-id").values_list("id", flat=True).first() or 0
    resources = set(resource_order(conns[0].kind))  # what one tiered run of a store syncs
    # The fleet tick (sync.scheduler) enqueues stores whose RunSchedule is due: make both due now.
    now = clock.now()
    RunSchedule.objects.filter(connection__in=conns, resource="").update(next_sync_at=now, queued_at=None)
    Schedule.objects.filter(name=tick_name("tiendanube")).update(next_run=now)
    ctx.say("starting `manage.py qcluster` so the stores sync on their own (the scheduler ticks every ~30 s)")
    env = {**os.environ, "Q_WORKERS": "2"}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def scheduled(c: Connection) -> dict[str, SyncQueue]:
        """The store's newest scheduled incremental queue of each resource since the cluster started (a
        reconciliation full scan that happens to fall due meanwhile is not the tiered run we wait for)."""
        newest: dict[str, SyncQueue] = {}
        qs = SyncQueue.objects.filter(connection=c, origin="schedule", full_scan=False, id__gt=last_id)
        for q in qs.order_by("id"):
            newest[q.resource] = q
        return newest

    def settled(c: Connection) -> bool:
        runs = scheduled(c)
        return set(runs) >= resources and not any(q.is_active for q in runs.values())

    rows = []
    try:
        while time.monotonic() - started < timeout:
            if all(settled(c) for c in conns):
                break
            time.sleep(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    seconds = round(time.monotonic() - started, 2)
    for c in conns:
        queues = list(scheduled(c).values())
        ok = settled(c) and all(q.state == QueueState.DONE for q in queues)
        state = "done" if ok else "failed" if settled(c) else "not yet"
        rows.append(
            {
                "connector": "tiendanube",
                "resource": f"{c.external_account_id}/scheduled",
                "records": sum(q.done_count for q in queues),
                "seconds": seconds,
                "state": state,
                "note": "on its own under qcluster (incremental: overlap only)",
            }
        )
    return rows


def converge(ctx) -> dict:
    """In the first store, a product renamed, a customer and an order deleted (deletions no incremental run can
    see); then what the schedules run: the store's tiered sync, then each resource's reconciliation full scan."""
    from sync.convergence import convergence_row, table_differences
    from sync.engine import run_queue
    from sync.services import sync_start

    from .resources import RESOURCES, first_text

    sandbox, conn = ctx.upstreams["tiendanube"]["sandbox"], ctx.upstreams["tiendanube"]["connections"][0]
    store = sandbox.stores[conn.external_account_id]
    started = time.monotonic()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    sandbox.touch(store.store_id, "products", store.data["products"][0]["id"], now, name={"es": "Editado"})
    with sandbox.lock:
        store.data["customers"].pop(1)
        store.data["orders"].pop(2)
    connection_sync(connection_id=conn.pk, origin="schedule")
    for resource in RESOURCES:
        result = sync_start(
            connection=conn, resource=resource, origin="schedule", enqueue=False, full_scan=True, force=True
        )
        run_queue(result.queue.pk)
    checked = {
        "products": table_differences(
            conn, "products", {str(r["id"]): {"name": first_text(r["name"])} for r in store.data["products"]}
        ),
        "customers": table_differences(conn, "customers", {str(r["id"]): {} for r in store.data["customers"]}),
        "orders": table_differences(conn, "orders", {str(r["id"]): {} for r in store.data["orders"]}),
    }
    row = convergence_row("tiendanube", checked, time.monotonic() - started, "1 edited, 2 deleted")
    ctx.say(f"convergence: {row['note']}")
    return row
