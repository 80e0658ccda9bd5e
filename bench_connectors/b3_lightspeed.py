"""B3 incremental: N Lightspeed products through the real connector + engine against the sandbox, then
1 % changed and a few deleted upstream; the incremental run must take <= 5 % of the full run's time and
pick up exactly those changes."""

from __future__ import annotations

import time

TARGET_RATIO = 0.05
DELETED = 25


def _run(connection, *, full_scan: bool):
    from sync import engine
    from sync.models import Origin
    from sync.services import sync_start

    started = time.perf_counter()
    result = sync_start(
        connection=connection, resource="products", origin=Origin.MANUAL, full_scan=full_scan, enqueue=False
    )
    engine.run_queue(result.queue.pk)
    seconds = time.perf_counter() - started
    queue = result.queue
    queue.refresh_from_db()
    return seconds, queue


def run(*, size: int, repeat: int, org) -> dict:
    from commerce.models import Product
    from connectors.lightspeed import services
    from connectors.lightspeed.sandbox import LightspeedSandbox
    from connectors.sandbox.server import serve

    fulls, incrs, notes, ok = [], [], [], True
    for rep in range(repeat):
        prefix = f"benchstore{rep}"
        # Forced X-RateLimit-Remaining: the benchmark measures sync cost, not Lightspeed's 350/5 min pacing.
        sandbox = LightspeedSandbox(domain_prefix=prefix, customers=0, products=size, customer_groups=0)
        sandbox.knobs.rate_remaining = 1_000_000
        with serve(sandbox.app()) as base:
            conn = services.connection_connect_personal_token(
                organization=org,
                domain_prefix=prefix,
                token=next(iter(sandbox.personal_tokens)),
                base_url=f"{base}/api/2.0/",
            )
            full_s, full_q = _run(conn, full_scan=True)
            stored = Product.objects.filter(connection=conn, deleted_at__isnull=True).count()
            live = sorted(sandbox.live("products"), key=lambda r: r["version"])
            changed = max(1, size // 100)
            # Spread the edits over the whole range (not only the newest records).
            step = max(1, len(live) // (changed + DELETED))
            picks = live[::step][: changed + DELETED]
            for r in picks[:changed]:
                sandbox.update("products", r["id"], name=f"Changed {r['name']}")
            for r in picks[changed:]:
                sandbox.delete("products", r["id"])
            incr_s, incr_q = _run(conn, full_scan=False)
            seen_changed = Product.objects.filter(connection=conn, name__startswith="Changed ").count()
            seen_deleted = Product.objects.filter(connection=conn, deleted_at__isnull=False).count()
            exact = (
                stored == size
                and full_q.done_count == size
                and incr_q.done_count == changed + DELETED
                and seen_changed == changed
                and seen_deleted == DELETED
                and incr_q.failed_count == 0
            )
            ok = ok and exact
            fulls.append(full_s)
            incrs.append(incr_s)
            notes.append(
                f"run {rep + 1}: full {full_s:.2f}s ({full_q.done_count} lines, {full_q.state}), "
                f"incr {incr_s:.3f}s ({incr_q.done_count} lines: {seen_changed}/{changed} changed, "
                f"{seen_deleted}/{DELETED} deleted stored; {incr_q.state}) -> {'exact' if exact else 'MISMATCH'}"
            )
    from .common import median

    full_m, incr_m = median(fulls), median(incrs)
    ratio = incr_m / full_m if full_m else float("nan")
    return {
        "id": "B3",
        "name": f"incremental Lightspeed ({size:,} products, 1% changed + {DELETED} deleted)",
        "measured": f"full {full_m:.2f}s ({size / full_m:,.0f} rec/s), incr {incr_m:.3f}s = {ratio:.2%} of full",
        "target": "incr <= 5% of full; exact changes",
        "ratio": f"{ratio / TARGET_RATIO:.2f}x of budget",
        "met": ok and ratio <= TARGET_RATIO,
        "notes": notes,
    }
