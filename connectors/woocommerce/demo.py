"""Demo: sync every resource of the sandbox store (customers, orders, products, coupons), then show signed
webhooks arriving."""

from __future__ import annotations

import secrets
import time

from django.test import Client as DjangoClient
from django.urls import reverse

from connectors.models import Connection
from connectors.sandbox.server import serve
from customers.models import Customer
from sync.engine import run_queue
from sync.models import Lane, SyncQueue
from sync.services import sync_start

from .resources import RESOURCES
from .sandbox import WooSandbox
from .tasks import refetch_record

DEMO_CUSTOMERS = 797  # the store that used to hang the old system


def run(ctx) -> list[dict]:
    sandbox = WooSandbox(seed=7, size=DEMO_CUSTOMERS, orders=400, products=120)
    base_url = ctx.stack.enter_context(serve(sandbox.app))
    webhook_secret = secrets.token_urlsafe(24)
    conn = Connection.objects.filter(organization=ctx.organization, kind="woocommerce", name="Demo Woo store").first()
    conn = conn or Connection(organization=ctx.organization, kind="woocommerce", name="Demo Woo store")
    conn.base_url = base_url  # a fresh port every run
    conn.needs_reauth = False
    conn.credentials = {
        "consumer_key": sandbox.consumer_key,
        "consumer_secret": sandbox.consumer_secret,
        "webhook_secret": webhook_secret,
    }
    conn.save()
    ctx.say(f"sandbox store at {base_url}; connection #{conn.pk}")

    rows = []
    for resource in RESOURCES:  # the registered resources: a new one is demonstrated without an edit here
        started = time.monotonic()
        result = sync_start(connection=conn, resource=resource, origin="manual", enqueue=False, full_scan=True)
        run_queue(result.queue.pk)
        queue = SyncQueue.objects.get(pk=result.queue.pk)
        rows.append(
            _row(
                resource,
                queue,
                time.monotonic() - started,
                f"{queue.pages_fetched} page(s); {queue.failed_count} failed; queue #{queue.pk}",
            )
        )
        ctx.say(f"{resource}: {queue.done_count} records, {queue.state}")
    rows.append(_webhooks(ctx, conn, sandbox, webhook_secret))
    ctx.upstreams["woocommerce"] = {"sandbox": sandbox, "connection": conn}
    return rows


def converge(ctx) -> dict:
    """Edits, deletes and trashes in the store with no webhook reaching us, then what the schedules run:
    each resource's interval run (incremental) and the daily reconciliation (a full scan)."""
    from sync.convergence import convergence_row, table_differences

    sandbox, conn = ctx.upstreams["woocommerce"]["sandbox"], ctx.upstreams["woocommerce"]["connection"]
    started = time.monotonic()
    sandbox.webhook_url = ""  # deliveries lost: only the schedules can converge
    customers, orders, products = sandbox.ids("customers"), sandbox.ids("orders"), sandbox.ids("products")
    sandbox.update("customers", customers[1], first_name="Edited")
    sandbox.delete("customers", customers[2])
    sandbox.update("orders", orders[0], status="completed")
    sandbox.trash("orders", orders[1])
    sandbox.delete("orders", orders[2])
    sandbox.update("products", products[0], name="Edited product")
    sandbox.trash("products", products[1])
    for full_scan in (False, True):  # the interval schedules, then the reconciliation schedule
        for resource in RESOURCES:
            result = sync_start(
                connection=conn, resource=resource, origin="schedule", enqueue=False, full_scan=full_scan, force=True
            )
            run_queue(result.queue.pk)

    def live(name: str) -> list[dict]:
        return [r for r in sandbox.data[name].values() if r.get("status") != "trash"]

    checked = {
        "customers": table_differences(
            conn,
            "customers",
            {str(r["id"]): {"first_name": r["first_name"], "email": r["email"]} for r in live("customers")},
        ),
        "orders": table_differences(conn, "orders", {str(r["id"]): {"status": r["status"]} for r in live("orders")}),
        "products": table_differences(conn, "products", {str(r["id"]): {"name": r["name"]} for r in live("products")}),
        "coupons": table_differences(conn, "coupons", {str(r["id"]): {"code": r["code"]} for r in live("coupons")}),
    }
    row = convergence_row(
        "woocommerce", checked, time.monotonic() - started, "3 edited, 2 deleted, 2 trashed, no webhooks"
    )
    ctx.say(f"convergence: {row['note']}")
    return row


def _row(resource: str, queue: SyncQueue, seconds: float, note: str) -> dict:
    return {
        "connector": "woocommerce",
        "resource": resource,
        "records": queue.done_count,
        "seconds": round(seconds, 2),
        "state": queue.state,
        "note": note,
    }


def _webhooks(ctx, conn: Connection, sandbox: WooSandbox, secret: str) -> dict:
    """The sandbox signs and posts deliveries to our receiver (through Django's test client, so no port
    is needed); we then work the webhook queue the way a qcluster worker would."""
    started = time.monotonic()
    http = DjangoClient(HTTP_HOST="127.0.0.1")
    answers: list[dict] = []

    def transport(url: str, body: bytes, headers: dict[str, str]) -> int:
        extra = {k: v for k, v in headers.items() if k != "Content-Type"}
        response = http.post(url, data=body, content_type=headers["Content-Type"], headers=extra)
        answers.append(response.json())
        return response.status_code

    sandbox.webhook_url = reverse("woocommerce:webhook", args=[conn.pk])
    sandbox.webhook_secret = secret
    sandbox.webhook_transport = transport
    ping_status = sandbox.ping()
    target = sandbox.ids("customers")[0]
    sandbox.update("customers", target, first_name="Webhooked")
    victim = next(i for i in reversed(sandbox.ids("customers")) if sandbox.data["customers"][i]["role"] == "customer")
    sandbox.delete("customers", victim)
    # A captured delivery replayed with a new delivery id is recognised by its body hash and dropped.
    body = b'{"id": %d}' % victim
    transport(sandbox.webhook_url, body, sandbox.webhook_headers("customer.deleted", body))
    # Every delivery is a hint: the worker re-fetches the record and stores what the store answers now.
    for answer in answers:
        if "refetch" in answer:
            refetch_record(conn.pk, answer["refetch"]["resource"], answer["refetch"]["id"])
    queue_ids = set(SyncQueue.objects.filter(connection=conn, lane=Lane.WEBHOOK).values_list("pk", flat=True))
    for queue_id in sorted(queue_ids):
        run_queue(queue_id)
    customer = Customer.objects.get(connection=conn, external_id=str(target))
    gone = Customer.objects.get(connection=conn, external_id=str(victim))
    queue = SyncQueue.objects.get(pk=max(queue_ids)) if queue_ids else None
    note = (
        f"ping {ping_status}; customer.updated #{target} -> first_name={customer.first_name!r}; "
        f"customer.deleted #{victim} -> deleted_at set={gone.deleted_at is not None}; "
        f"replays dropped={sum(1 for a in answers if 'duplicate' in a)}"
    )
    ctx.say(f"webhooks: {note}")
    return {
        "connector": "woocommerce",
        "resource": "webhooks",
        "records": queue.done_count if queue else 0,
        "seconds": round(time.monotonic() - started, 2),
        "state": queue.state if queue else "none",
        "note": note,
    }
