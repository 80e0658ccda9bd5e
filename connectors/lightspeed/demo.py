"""`manage.py demo` part for Lightspeed: start the sandbox retailer, connect it through the real OAuth
flow (authorize -> callback -> token endpoint), sync customers, products and customer groups, then make
an upstream change and show an incremental run picking up exactly that."""

from __future__ import annotations

import os
import time
from urllib.parse import parse_qs, urlsplit

import requests

from connectors.sandbox.server import serve
from sync import engine
from sync.models import Origin
from sync.services import sync_start

from . import services
from .sandbox import LightspeedSandbox

RESOURCES = ("customer_groups", "customers", "products")
DOMAIN_PREFIX = "demostore"


def _point_oauth_at(ctx, base: str, sandbox: LightspeedSandbox) -> None:
    """Point LIGHTSPEED_* at the sandbox for the life of the demo (restored on exit), so the admin's
    "connect" link works against it too while the demo serves."""
    env = {
        "LIGHTSPEED_CLIENT_ID": sandbox.client_id,
        "LIGHTSPEED_CLIENT_SECRET": sandbox.client_secret,
        "LIGHTSPEED_AUTHORIZE_URL": f"{base}/connect",
        "LIGHTSPEED_TOKEN_URL": f"{base}/api/1.0/token",
        "LIGHTSPEED_API_BASE_URL": f"{base}/api/2.0/",
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


# The demo plays the staff user's browser: start and callback share this stand-in session key.
DEMO_SESSION = "lightspeed-demo-session"


def _connect(ctx):
    authorize = services.oauth_start(
        user=ctx.user, organization=ctx.organization, session_key=DEMO_SESSION, connection_name="Lightspeed demo store"
    )
    # The retailer's browser at the (sandbox) authorize page, clicking "Allow". A plain session: the
    # guarded one has max_redirects=0, which makes requests raise on any 3xx even without following it.
    with requests.Session() as browser:
        answer = browser.get(authorize, allow_redirects=False, timeout=10)
    query = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
    return services.oauth_complete(
        user=ctx.user,
        state=query.get("state"),
        code=query.get("code"),
        domain_prefix=query.get("domain_prefix"),
        session_key=DEMO_SESSION,
    )


def _sync(connection, resource: str, *, full_scan: bool, note: str = "") -> dict:
    started = time.monotonic()
    result = sync_start(
        connection=connection, resource=resource, origin=Origin.MANUAL, full_scan=full_scan, enqueue=False
    )
    engine.run_queue(result.queue.pk)
    q = result.queue
    q.refresh_from_db()
    return {
        "connector": "lightspeed",
        "resource": resource + ("" if full_scan else " (incr.)"),
        "records": q.done_count,
        "seconds": round(time.monotonic() - started, 2),
        "state": q.state,
        "note": (note + "; " if note else "")
        + (f"version cursor {q.cursor_to}" if q.cursor_to else "no changes")
        + (f"; {q.last_error[:80]}" if q.last_error else ""),
    }


def _version_start() -> int:
    """Upstream versions only grow. A demo database that already synced the sandbox retailer holds its old
    cursors, so the restarted sandbox continues above them (else its edits would look old)."""
    from sync.models import SyncStatus

    cursors = SyncStatus.objects.filter(connection__kind="lightspeed", connection__external_account_id=DOMAIN_PREFIX)
    known = [int(c) for c in cursors.values_list("cursor", flat=True) if c.isdigit()]
    return max([1_000_000_000, *known])


def run(ctx) -> list[dict]:
    sandbox = LightspeedSandbox(domain_prefix=DOMAIN_PREFIX, version_start=_version_start())
    base = ctx.stack.enter_context(serve(sandbox.app()))
    _point_oauth_at(ctx, base, sandbox)
    connection = _connect(ctx)
    ctx.say(f"connected retailer {connection.external_account_id!r} via OAuth (sandbox at {base})")
    rows = [_sync(connection, name, full_scan=True) for name in RESOURCES]
    # An upstream change: one customer edited, one deleted. The next run sees exactly those two.
    first, second = sorted(sandbox.live("customers"), key=lambda r: r["version"])[:2]
    sandbox.update("customers", first["id"], email="changed@example.com")
    sandbox.delete("customers", second["id"])
    rows.append(_sync(connection, "customers", full_scan=False, note="1 edited + 1 deleted upstream"))
    ctx.upstreams["lightspeed"] = {"sandbox": sandbox, "connection": connection}
    return rows


def converge(ctx) -> dict:
    """Edits and deletions in every collection, then each resource's scheduled (incremental) run: Lightspeed
    lists deleted objects with their version, so the version cursor alone converges."""
    from sync.convergence import convergence_row, table_differences

    sandbox, conn = ctx.upstreams["lightspeed"]["sandbox"], ctx.upstreams["lightspeed"]["connection"]
    started = time.monotonic()
    customers, products = sandbox.live("customers"), sandbox.live("products")
    sandbox.update("customers", customers[0]["id"], email="converged@example.com")
    sandbox.delete("customers", customers[1]["id"])
    sandbox.update("products", products[0]["id"], name="Edited product")
    sandbox.delete("products", products[1]["id"])
    for name in RESOURCES:
        _sync(conn, name, full_scan=False)
    checked = {
        "customers": table_differences(
            conn, "customers", {r["id"]: {"email": r["email"]} for r in sandbox.live("customers")}
        ),
        "products": table_differences(
            conn, "products", {r["id"]: {"name": r["name"]} for r in sandbox.live("products")}
        ),
        "customer_groups": table_differences(
            conn, "customer_groups", {r["id"]: {} for r in sandbox.live("customer_groups")}
        ),
    }
    row = convergence_row("lightspeed", checked, time.monotonic() - started, "2 edited, 2 deleted")
    ctx.say(f"convergence: {row['note']}")
    return row
