"""B5 rate-limited: a Tiendanube store whose bucket (40) drains 2 requests/s; a products sync of `pages`
pages (small per_page) through the real connector + engine. Target: >= 95 % of the allowed rate, 0 x 429.

Allowed rate: after the initial burst of one full bucket, `drain` requests per second. So the steady rate
achieved is (requests - bucket) / seconds, compared with `drain`."""

from __future__ import annotations

import os
import time

TARGET = 0.95
PER_PAGE = 5
BUCKET = 40
DRAIN = 2.0


def run(*, pages: int, repeat: int, org) -> dict:
    from connectors.models import Connection
    from connectors.sandbox.server import serve
    from connectors.tiendanube import conf
    from connectors.tiendanube.sandbox import TiendanubeSandbox
    from sync import engine
    from sync.models import Origin
    from sync.services import sync_start

    from .common import median

    if pages <= BUCKET + 10:
        raise ValueError(f"not available: {pages} pages fit in the {BUCKET}-request burst; use more than {BUCKET + 10}")
    fractions, seconds_list, notes, zero_429, exact = [], [], [], True, True
    for rep in range(repeat):
        store_id = str(5001 + rep)  # a fresh store (and client-side bucket key) per repetition
        sandbox = TiendanubeSandbox(stores=0, records=0, bucket_size=BUCKET, drain=DRAIN)
        store = sandbox.add_store(store_id, records=pages * PER_PAGE)
        store.installed, store.token = True, f"bench-token-{rep}"
        with serve(sandbox.app) as base:
            os.environ.update(
                {
                    "TIENDANUBE_API_URL": base + "/v1/",
                    "TIENDANUBE_USER_AGENT": "SyncHub bench (bench@example.com)",
                    "TIENDANUBE_PAGE_SIZE": str(PER_PAGE),
                    "TIENDANUBE_BUCKET_SIZE": str(BUCKET),
                    "TIENDANUBE_BUCKET_DRAIN": str(DRAIN),
                }
            )
            conn = Connection(
                organization=org, kind="tiendanube", external_account_id=store_id, name=f"bench {store_id}"
            )
            conn.base_url = conf.get().store_base_url(store_id)
            conn.credentials = {"access_token": store.token}
            conn.save()
            calls0, c429_0 = sandbox.api_calls, sandbox.count_429
            started = time.perf_counter()
            result = sync_start(
                connection=conn, resource="products", origin=Origin.MANUAL, full_scan=True, enqueue=False
            )
            engine.run_queue(result.queue.pk)
            seconds = time.perf_counter() - started
            queue = result.queue
            queue.refresh_from_db()
        requests_made = sandbox.api_calls - calls0
        got_429 = sandbox.count_429 - c429_0
        steady = (requests_made - BUCKET) / seconds if seconds else 0.0
        fraction = steady / DRAIN
        fractions.append(fraction)
        seconds_list.append(seconds)
        zero_429 = zero_429 and got_429 == 0
        exact = exact and queue.done_count == pages * PER_PAGE
        notes.append(
            f"run {rep + 1}: {requests_made} requests ({queue.pages_fetched} pages, {queue.done_count} records, "
            f"{queue.state}) in {seconds:.1f}s; steady {steady:.3f} req/s = {fraction:.1%} of {DRAIN}/s; "
            f"429s: {got_429}"
        )
    frac = median(fractions)
    return {
        "id": "B5",
        "name": f"rate-limited Tiendanube ({pages} pages x {PER_PAGE}, bucket {BUCKET}, drain {DRAIN}/s)",
        "measured": f"{frac:.1%} of allowed rate, {median(seconds_list):.1f}s, 429s: {'0' if zero_429 else '>0'}",
        "target": ">= 95% of allowed rate, 0 x 429",
        "ratio": f"{frac / TARGET:.2f}x of target",
        "met": zero_429 and exact and frac >= TARGET,
        "notes": notes,
    }
