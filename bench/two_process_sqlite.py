"""``python -m bench.two_process_sqlite [--size N] [--repeat R]``: on SQLite, would the fetch side in a process of
its own help?

A prototype measurement, not the engine (bench/two_process.py asks the same on PostgreSQL). A forked child runs
the engine's own fetch side of a first sync (the Woo connector's ``iter_pages``, ``QueueRunner._key_page`` and
``_map_early``: parse, key, source hash, mapping) and sends each page's (external id, mapped values) pairs
through a ``multiprocessing`` queue (pickled); the parent writes them in groups of at least ~3,000 as the
engine's SQLite first sync does (one IMMEDIATE transaction: ``bulk.insert_new`` of the rows TableSink.write
would build, the done lines as one LineBlock statement, the queue's counters). Left out of its timed span, as in
bench/two_process.py: ``sync_start``, the end of the run (``mark_missing_deleted``, finalize), the engine's page
memos and the main thread's per-group bookkeeping; it always writes full groups. Read it as a rough bound.

Rows: the engine as a user gets it, the two processes (the mapped values sent, or each row's SQLite
parameters prepared in the child: text and numbers, cheaper to pickle, and the parent left with the INSERT),
the child alone (pages drained, nothing sent or
written), the fetch side alone in this process (nothing sent), and the plain SQLite loop; interleaved, first
runs on an empty table (a fresh file, like bench.sqlite) against the pre-rendered upstream.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import scenario
from bench.two_process import received_groups, report


def _fetch_side(queue_id: int, send, *, prepared: bool = False) -> int:
    """The engine's fetch side for a first sync; ``send(pairs)`` per page (or None: drained). Records seen.
    ``prepared``: each pair's values are sent as the row's SQLite parameters (bulk._tuples of the row
    TableSink.write would build, text and numbers only) instead of the mapped values."""
    from connectors.base import FetchContext
    from core import clock
    from customers.models import Customer
    from sync import bulk
    from sync.engine import QueueRunner
    from sync.models import SyncQueue
    from sync.sinks import TableSink

    runner = QueueRunner(SyncQueue.objects.get(pk=queue_id))
    runner.client = runner.connector.client(runner.connection)
    runner._map_ahead = True
    ctx = FetchContext(client=runner.client, cursor="", token=None, full_scan=True, params={})
    seen = 0
    for page in runner.resource.iter_pages(ctx):
        keyed = runner._key_page(page)
        runner._map_early(page, keyed)
        plan = runner._early.pop(id(keyed))
        pairs = [(ext, values) for ext, (_record, _action, values) in plan.ready.items()]
        if prepared:
            base = TableSink._base(runner.connection, clock.now())
            rows = bulk._tuples(Customer, [TableSink._row(base, ext, values) for ext, values in pairs])
            pairs = [(ext, row) for (ext, _), row in zip(pairs, rows, strict=True)]
        seen += len(pairs)
        if send is not None:
            send(pairs)
    return seen


def _child(queue_id: int, out, cpu, send: bool, prepared: bool) -> None:
    from django.conf import settings
    from django.db import connections

    gc.set_threshold(settings.SYNC_GC_THRESHOLD, 10, 10)  # as during the engine's runs (core.gctune)
    c0 = time.process_time()
    try:
        _fetch_side(queue_id, out.put if send else None, prepared=prepared)
    except BaseException as exc:  # the parent raises it instead of waiting for pages forever
        out.put(RuntimeError(f"child failed: {exc.__class__.__name__}: {exc}"))
    finally:
        out.put(None)
        cpu.value = time.process_time() - c0
        connections.close_all()


def two_processes(conn, n: int, *, write: bool = True, prepared: bool = False) -> tuple[float, float]:
    """(wall seconds, the child's CPU seconds) of one first sync of ``conn`` by the two processes."""
    from django.db import connections, transaction
    from django.db.models import F

    from core import clock
    from customers.models import Customer
    from sync import bulk
    from sync.models import LineAction, LineState, SyncQueue
    from sync.services import sync_start
    from sync.services.state import LineBlock
    from sync.sinks import TableSink

    queue_id = sync_start(connection=conn, resource=scenario.RESOURCE, enqueue=False, full_scan=True).queue.pk
    connections.close_all()  # the child must not share the parent's database connection
    ctx = mp.get_context("fork")
    out, cpu = ctx.Queue(maxsize=64), ctx.Value("d", 0.0)
    t0 = time.perf_counter()
    child = ctx.Process(target=_child, args=(queue_id, out, cpu, write, prepared))
    head, n_columns = bulk._insert_head(Customer)
    child.start()
    total = 0
    for group in received_groups(out):
        pairs = [pair for page in group for pair in page]
        total += len(pairs)
        if not pairs:
            continue
        pairs.sort(key=lambda pair: pair[0])  # key order, as TableSink.write
        now = clock.now()
        base = TableSink._base(conn, now)
        with transaction.atomic():
            if prepared:  # the child's rows as they are: one multi-row INSERT, as insert_new sends them
                bulk._execute_values(head, "", n_columns, [row for _, row in pairs])
            else:
                bulk.insert_new(Customer, [TableSink._row(base, ext, values) for ext, values in pairs])
            LineBlock(queue_id, [ext for ext, _ in pairs], LineState.DONE, LineAction.UPSERT, 1, now).insert()
            SyncQueue.objects.filter(pk=queue_id).update(
                done_count=F("done_count") + len(pairs), total_count=F("total_count") + len(pairs), updated_at=now
            )
    child.join()
    wall = time.perf_counter() - t0
    written = Customer.objects.filter(connection=conn).count()
    if write and (total != n or written != n):
        raise RuntimeError(f"two processes wrong: {total} records sent, {written} rows, expected {n}")
    return wall, cpu.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--path", default=str(Path(tempfile.gettempdir()) / "synchub_bench_two_sqlite.sqlite3"))
    args = parser.parse_args()
    path = Path(args.path)
    scenario.fresh_sqlite(path)
    n = args.size
    up = scenario.Upstream("prerendered", stores=[(n, 0)])
    walls: dict[str, list[float]] = {
        "engine": [],
        "two processes": [],
        "two processes, rows prepared in the child": [],
        "child alone": [],
        "fetch side alone, this process": [],
        "plain loop (SQLite)": [],
    }
    child_cpu: dict[str, list[float]] = {
        "two processes": [],
        "two processes, rows prepared in the child": [],
        "child alone": [],
    }
    print(f"load at start {os.getloadavg()}", file=sys.stderr)
    try:
        for i in range(args.repeat):
            for what in walls:
                conn = scenario.fresh_connection(up, n, name=f"two-{i}-{what}")
                if what == "engine":
                    wall = scenario.engine_run(conn, expect=n)
                elif what == "plain loop (SQLite)":
                    wall = scenario.sqlite_loop_run(up, n, path, conn)
                elif what == "fetch side alone, this process":
                    from sync.services import sync_start

                    queue_id = sync_start(
                        connection=conn, resource=scenario.RESOURCE, enqueue=False, full_scan=True
                    ).queue.pk
                    gc.set_threshold(50_000, 10, 10)
                    t0 = time.perf_counter()
                    seen = _fetch_side(queue_id, None)
                    wall = time.perf_counter() - t0
                    gc.set_threshold(700, 10, 10)
                    assert seen == n, seen
                else:
                    wall, cpu = two_processes(
                        conn, n, write=what != "child alone", prepared=what.endswith("in the child")
                    )
                    child_cpu[what].append(cpu)
                walls[what].append(wall)
                extra = f" (child CPU {child_cpu[what][-1]:.2f})" if what in child_cpu else ""
                print(f"[{time.strftime('%H:%M:%S')}] {what} #{i + 1}: {wall:.2f}s{extra}", file=sys.stderr, flush=True)
    finally:
        up.close()
    report(f"SQLite, {n:,} customers, first runs, medians of {args.repeat}", walls, child_cpu, "plain loop (SQLite)")


if __name__ == "__main__":
    main()
