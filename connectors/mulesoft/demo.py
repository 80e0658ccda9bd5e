"""Demo: open the customer list as the demo user, then run the loyalty refresh it queued."""

from __future__ import annotations

import time

from django.test import Client as DjangoClient
from django_q.models import OrmQ

from connectors.models import Connection
from customers.models import LoyaltyTier
from sync.models import SyncQueue
from sync.services import setting_set
from sync.tasks import run_queue

from . import conf, services
from .sandbox import MuleSoftSandbox


def _queued_refreshes(organization_id: int) -> list[OrmQ]:
    """The engine runs of loyalty_tiers the list handed to django-q2 (args: the queue id)."""
    ids = set(
        SyncQueue.objects.filter(organization_id=organization_id, resource=services.RESOURCE).values_list(
            "pk", flat=True
        )
    )
    return [q for q in OrmQ.objects.all() if q.task.get("func") == "sync.tasks.run_queue" and q.task["args"][0] in ids]


def run(ctx) -> list[dict]:
    started = time.monotonic()
    sandbox = MuleSoftSandbox().start()
    ctx.stack.callback(sandbox.stop)
    org = ctx.organization
    setting_set(
        key=conf.ENDPOINT_SETTING,
        value=sandbox.endpoint,
        organization=org,
        description="MuleSoft loyalty API base (demo sandbox)",
    )
    conn = Connection.objects.filter(organization=org, kind="mulesoft").first() or Connection(
        organization=org, kind="mulesoft", name=services.CONNECTION_NAME
    )
    conn.base_url = sandbox.endpoint
    conn.credentials = {"access_token": sandbox.token}  # per-connection token; MULESOFT_ACCESS_TOKEN also works
    conn.save()
    # (A re-run of the demo within the hour is throttled by the connector's RunPolicy: nothing is queued.)

    web = DjangoClient(HTTP_HOST="127.0.0.1")
    web.force_login(ctx.user)
    t0 = time.monotonic()
    response = web.get("/api/customers")
    request_ms = (time.monotonic() - t0) * 1000
    ctx.say(
        f"GET /api/customers -> {response.status_code} in {request_ms:.0f} ms; MuleSoft calls during it: {sandbox.calls}"
    )
    queued = _queued_refreshes(org.pk)
    ctx.say(f"loyalty refresh tasks queued by the list: {len(queued)}")
    outcome = "not queued"
    for row in queued:  # what a qcluster worker would do
        outcome = run_queue(*row.task["args"]) or "crashed"
        row.delete()
    tiers = LoyaltyTier.objects.filter(organization=org, deleted_at__isnull=True).order_by("rank")
    ctx.say(f"refresh outcome: {outcome}; tiers stored: {', '.join(t.name for t in tiers)}")
    again = web.get("/api/customers")
    ctx.say(f"list opened again -> {again.status_code}; queued now: {len(_queued_refreshes(org.pk))} (throttled, 1/h)")
    ctx.upstreams["mulesoft"] = {"sandbox": sandbox}
    return [
        {
            "connector": "mulesoft",
            "resource": "loyalty_tiers",
            "records": tiers.count(),
            "seconds": round(time.monotonic() - started, 2),
            "state": outcome,
            "note": f"refreshed after GET /api/customers ({request_ms:.0f} ms, 0 MuleSoft calls in request)",
        }
    ]


def converge(ctx) -> dict:
    """A tier renamed and one retired in MuleSoft, then the (throttled, hourly) refresh run, forced."""
    from connectors.models import Connection
    from sync.convergence import convergence_row, table_differences
    from sync.services import sync_start

    sandbox = ctx.upstreams["mulesoft"]["sandbox"]
    started = time.monotonic()
    sandbox.tiers[0]["name"] = "Bronze Plus"
    sandbox.tiers.pop()
    conn = Connection.objects.filter(organization=ctx.organization, kind="mulesoft").first()
    result = sync_start(connection=conn, resource=services.RESOURCE, origin="schedule", enqueue=False, force=True)
    run_queue(result.queue.pk)
    upstream = {t["id"]: {"name": t["name"]} for t in sandbox.tiers}
    row = convergence_row(
        "mulesoft",
        {"loyalty_tiers": table_differences(conn, services.RESOURCE, upstream)},
        time.monotonic() - started,
        "1 renamed, 1 retired",
    )
    ctx.say(f"convergence: {row['note']}")
    return row
