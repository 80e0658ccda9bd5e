"""Demo: a local S3 (moto server on 127.0.0.1), the sandbox MDM, one export, and the read path."""

from __future__ import annotations

import os
import time

import boto3

from connectors.models import Connection
from connectors.sandbox.s3 import s3_server

from . import conf, readcache, selectors, services
from .sandbox import MdmSandbox, make_items

DEMO_BUCKET = "synchub-demo"


def _local_s3(ctx) -> str:
    """A moto S3 server on loopback, pointed at by this process's conf AND by os.environ, so the qcluster the
    demo starts (and "Run export now" under it) writes to the same S3 with the same dummy credentials."""
    endpoint = s3_server(ctx.stack)
    if endpoint is None:
        raise RuntimeError("the MDM demo needs moto's S3 server: pip install -r requirements-demo.txt")
    env = {
        "MDM_S3_ENDPOINT_URL": endpoint,
        "MDM_S3_BUCKET": DEMO_BUCKET,
        "MDM_S3_ACCESS_KEY_ID": "demo",
        "MDM_S3_SECRET_ACCESS_KEY": "demo",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)

    def restore() -> None:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    ctx.stack.callback(restore)
    conf.MDM_S3_ENDPOINT_URL, conf.MDM_S3_BUCKET = endpoint, DEMO_BUCKET
    conf.MDM_S3_ACCESS_KEY_ID = conf.MDM_S3_SECRET_ACCESS_KEY = "demo"
    return endpoint


def run(ctx) -> list[dict]:
    started = time.monotonic()
    endpoint = _local_s3(ctx)
    ctx.say(f"S3 (moto) at {endpoint}, bucket {DEMO_BUCKET}; the demo's worker gets the same endpoint")
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
