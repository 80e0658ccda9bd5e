"""``python -m bench.orders [--size N] [--repeat R] [--thresholds 50000,1000000]``: WooCommerce orders.

The engine's first sync of ``N`` orders shaped as the REST API docs' example order (``bench.upstream.order``:
1-4 line items with their taxes and attributes, a tax line, a shipping line; ~2.3-3.6 kB of JSON, about 2.4
times a customer's containers) from the pre-rendered upstream (bench/prerendered.py), on PostgreSQL
(DATABASE_URL, default the bench database, which is DROPPED and re-created). Each round runs once per
collector threshold (SYNC_GC_THRESHOLD, core.gctune; interleaved, the order alternating), on emptied
tables, and counts the garbage collector's passes and the time they took (``gc.callbacks``), in this process:
the fetch process (SYNC_FETCH_PROCESS) is turned off for these runs, so every record is parsed and mapped here.

What it answers: what an order costs the engine, and whether the collector's threshold, set with customers
(docs/performance.md, issue 20, twenty-third pass), holds for records with more containers. No ratio to a
reference is claimed: the plain loop (bench/plain_loop.py) knows customers only.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

from bench import scenario


class CollectorClock:
    """Passes of the garbage collector by generation, and their seconds, while installed."""

    def __init__(self) -> None:
        self.passes = [0, 0, 0]
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.passes[info["generation"]] += 1
            self.seconds += time.perf_counter() - self._started

    def __enter__(self) -> CollectorClock:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self)


def run_orders(upstream: scenario.Upstream, n: int, threshold: int) -> tuple[float, CollectorClock]:
    """One first sync of the store's ``n`` orders with the collector's threshold at ``threshold``; checked."""
    from django.conf import settings

    from bench.upstream import order
    from commerce.models import Order
    from connectors.woocommerce.resources import Orders
    from sync.engine import run_queue
    from sync.services import sync_start

    scenario.reset_tables("commerce_order")
    conn = scenario.make_connection(upstream, upstream.url(n), name=f"orders-{n}")
    scenario.checkpoint()
    before = settings.SYNC_GC_THRESHOLD, settings.SYNC_FETCH_PROCESS
    settings.SYNC_GC_THRESHOLD, settings.SYNC_FETCH_PROCESS = threshold, False
    try:
        with CollectorClock() as clock:
            t0 = time.perf_counter()
            queue = sync_start(connection=conn, resource="orders", enqueue=False, full_scan=True).queue
            state = run_queue(queue.pk)
            elapsed = time.perf_counter() - t0
    finally:
        settings.SYNC_GC_THRESHOLD, settings.SYNC_FETCH_PROCESS = before
    queue.refresh_from_db()
    rows = Order.objects.filter(connection=conn, deleted_at__isnull=True).count()
    last = Order.objects.filter(connection=conn, external_id=str(n)).values("total", "line_items").first()
    expected = Orders().map(order(n))
    if last is None or (last["total"], last["line_items"]) != (expected["total"], expected["line_items"]):
        raise RuntimeError(f"orders run wrong: order {n} stored as {last}, mapped as {expected}")
    if state != "done" or queue.done_count != n or rows != n:
        raise RuntimeError(
            f"orders run wrong: state={state} done={queue.done_count} rows={rows} expected={n} "
            f"error={queue.last_error or queue.fetch_error}"
        )
    return elapsed, clock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.orders", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--thresholds", default="50000,1000000", help="SYNC_GC_THRESHOLD values, comma-separated")
    args = parser.parse_args(argv)
    thresholds = [int(t) for t in args.thresholds.split(",") if t.strip()]
    scenario.configure_env()
    if not os.environ["DATABASE_URL"].startswith("postgres"):
        parser.error("bench.orders runs on PostgreSQL: set DATABASE_URL=postgres://...")
    scenario.recreate_database(os.environ["DATABASE_URL"])
    scenario.setup_django(migrate=True)
    n = args.size
    load_start = os.getloadavg()
    upstream = scenario.Upstream("prerendered", stores=[(n, 0, "orders")])
    results: dict[int, list[tuple[float, CollectorClock]]] = {t: [] for t in thresholds}
    try:
        for i in range(args.repeat):
            for t in thresholds if i % 2 == 0 else thresholds[::-1]:
                seconds, clock = run_orders(upstream, n, t)
                results[t].append((seconds, clock))
                print(
                    f"[bench.orders {time.strftime('%H:%M:%S')}] threshold {t:,} #{i + 1}: {seconds:.2f}s, "
                    f"gc passes {clock.passes} in {clock.seconds:.3f}s",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        upstream.close()
    print(f"\nWooCommerce orders, {n:,}, engine first sync on PostgreSQL, medians of {args.repeat}")
    print("| SYNC_GC_THRESHOLD | median | rec/s | collector passes (gen 0/1/2) | collector seconds |")
    print("|---|---|---|---|---|")
    for t, runs in results.items():
        seconds = statistics.median(s for s, _ in runs)
        passes = [statistics.median(c.passes[g] for _, c in runs) for g in range(3)]
        gc_seconds = statistics.median(c.seconds for _, c in runs)
        print(
            f"| {t:,} | {seconds:.2f} s | {n / seconds:,.0f} | {' / '.join(f'{p:g}' for p in passes)} "
            f"| {gc_seconds:.3f} s |"
        )
    print(f"\n{scenario.load_line(load_start)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
