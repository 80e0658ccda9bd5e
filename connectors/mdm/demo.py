"""Demo: a local S3 (moto server on 127.0.0.1), the sandbox MDM, one export, and the read path."""

from __future__ import annotations

import logging
import time

import boto3

from connectors.models import Connection

from . import conf, readcache, selectors, services
from .sandbox import MdmSandbox, make_items

DEMO_BUCKET = "synchub-demo"


def run(ctx) -> list[dict]:
    from moto.server import ThreadedMotoServer  # dev dependency (moto[server]); imported only for the demo

    started = time.monotonic()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    ctx.stack.callback(server.stop)
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # Point this process at the local S3 (the demo's own configuration; real deployments use env vars).
    conf.MDM_S3_ENDPOINT_URL, conf.MDM_S3_BUCKET = endpoint, DEMO_BUCKET
    conf.MDM_S3_ACCESS_KEY_ID = conf.MDM_S3_SECRET_ACCESS_KEY = "demo"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=conf.MDM_S3_REGION,
        aws_access_key_id="demo",
        aws_secret_access_key="demo",
    ).create_bucket(Bucket=DEMO_BUCKET)

    sandbox = MdmSandbox(items=make_items(120)).start()
    ctx.stack.callback(sandbox.stop)
    conn = Connection.objects.filter(organization=ctx.organization, kind="mdm").first() or Connection(
        organization=ctx.organization, kind="mdm", name="MDM (sandbox)"
    )
    conn.base_url = sandbox.base_url
    conn.credentials = {"api_key": sandbox.api_key}
    conn.is_active = True
    conn.save()

    run = services.mdm_export_run(actor=ctx.user, origin="manual")
    ctx.say(
        f"export #{run.pk}: {run.status}, {run.item_count} item(s) -> {run.s3_location} ETag {run.etag} "
        f"({run.duration_ms} ms)"
    )
    note = f"{run.s3_location} ETag {run.etag}" if run.status == "success" else f"{run.error_type}: {run.error_message}"
    rows = [
        {
            "connector": "mdm",
            "resource": "ineligible_items",
            "records": run.item_count or 0,
            "seconds": round(time.monotonic() - started, 2),
            "state": run.status,
            "note": note,
        }
    ]
    ctx.upstreams["mdm"] = {"sandbox": sandbox, "connection": conn}
    if run.status == "success":
        readcache.ITEMS_CACHE.clear()
        items, snap = selectors.ineligible_items(sku="SKU-00007")
        ctx.say(f"read path: {snap.count} item(s) loaded from S3 into memory; SKU-00007 -> {items}")
        ctx.say(f"schedule: {services.schedule_show()}")
    return rows


def converge(ctx) -> dict:
    """Items changed and removed in MDM, then the scheduled export (a full engine run)."""
    from sync.convergence import convergence_row, table_differences

    sandbox, conn = ctx.upstreams["mdm"]["sandbox"], ctx.upstreams["mdm"]["connection"]
    started = time.monotonic()
    sandbox.items[0]["reason"] = "compliance-hold"
    del sandbox.items[1:4]
    services.mdm_export_run(actor=ctx.user, origin="schedule")
    upstream = {i["sku"]: {"reason": i["reason"], "market": i["market"]} for i in sandbox.items}
    row = convergence_row(
        "mdm",
        {"ineligible_items": table_differences(conn, "ineligible_items", upstream)},
        time.monotonic() - started,
        "1 changed, 3 removed",
    )
    ctx.say(f"convergence: {row['note']}")
    return row
