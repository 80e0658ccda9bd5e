"""``python -m bench.two_process [--size N] [--repeat R]``: would the fetch side in a process of its own help?

A prototype measurement, not the engine. A forked child runs the engine's own fetch side for a first sync
(the Woo connector's ``iter_pages`` with its 4 page threads, then ``QueueRunner._key_page`` and
``_map_early``: parse, key, source hash, mapping, binary COPY encoding) and sends each page's encoded rows
through a ``multiprocessing`` queue; the parent writes them in groups of at least ~3,000 (the queue row locked
with the engine's relaxed commit, one COPY of the rows, the done lines, the queue's counters, commit).
Known differences from the engine, in both directions (an independent review listed them): the parent sends
the done lines and the counters as two statements where the engine sends one; it always writes full groups
(the engine takes what arrived within SYNC_FETCH_GROUP_WAIT_MS); the child may run 64 pages ahead (the engine
32); the timed span leaves out ``sync_start``, the end of the run (mark_missing_deleted, finalize) and the
engine main thread's per-record bookkeeping and page memos. Read its figures as a rough bound, not a verdict.
Rows: the engine as a user gets it, the two processes, the child alone (pages drained, nothing written), and
the plain loop; interleaved, first runs on an empty table, against the pre-rendered upstream. Not with
DB_POOL on (a fork would inherit the pool).
Uses the database in DATABASE_URL as it is (migrated; ``python -m bench --only B2 --repeat 1`` sets it up).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import statistics
import time

from bench import plain_loop, scenario

GROUP = 3000


def _child(queue_id: int, out, cpu) -> None:
    from django.conf import settings
    from django.db import connections

    from connectors.base import FetchContext
    from sync.engine import QueueRunner
    from sync.models import SyncQueue

    gc.set_threshold(settings.SYNC_GC_THRESHOLD, 10, 10)  # as during the engine's runs (core.gctune)
    c0 = time.process_time()
    try:
        runner = QueueRunner(SyncQueue.objects.get(pk=queue_id))
        runner.client = runner.connector.client(runner.connection)
        runner._map_ahead = True
        runner._encode = runner.sink.row_encoder(runner)
        ctx = FetchContext(client=runner.client, cursor="", token=None, full_scan=True, params={})
        for page in runner.resource.iter_pages(ctx):
            keyed = runner._key_page(page)
            runner._map_early(page, keyed)
            plan = runner._early.pop(id(keyed))
            out.put((list(plan.encoded), list(plan.encoded.values())))
    except BaseException as exc:  # the parent raises it instead of waiting for pages forever
        out.put(RuntimeError(f"child failed: {exc.__class__.__name__}: {exc}"))
    finally:
        out.put(None)
        cpu.value = time.process_time() - c0
        connections.close_all()


def received_groups(out, *, size=len):
    """What the child puts on ``out``, in groups of at least GROUP records (``size(item)`` each; the last group
    may be smaller or empty) until it puts None; an exception it puts is raised here."""
    finished = False
    while not finished:
        group, count = [], 0
        while count < GROUP:
            item = out.get(timeout=120)
            if isinstance(item, Exception):
                raise item
            if item is None:
                finished = True
                break
            group.append(item)
            count += size(item)
        yield group


def two_processes(conn, n: int, *, write: bool = True) -> tuple[float, float]:
    """(wall seconds, the child's CPU seconds) of one first sync of ``conn`` by the two processes."""
    from django.db import connection, connections, transaction
    from django.db.models import F

    from core import clock
    from customers.models import Customer
    from sync import bulk
    from sync.models import LineAction, LineState, SyncQueue
    from sync.services import sync_start
    from sync.services.locks import lock_queue
    from sync.services.state import LineBlock

    queue_id = sync_start(connection=conn, resource=scenario.RESOURCE, enqueue=False, full_scan=True).queue.pk
    connections.close_all()  # the child must not share the parent's database connection
    ctx = mp.get_context("fork")
    out, cpu = ctx.Queue(maxsize=64), ctx.Value("d", 0.0)
    t0 = time.perf_counter()
    child = ctx.Process(target=_child, args=(queue_id, out, cpu))
    child.start()
    total = 0
    for group in received_groups(out, size=lambda item: len(item[0])):
        ids = [ext for item in group for ext in item[0]]
        rows = [row for item in group for row in item[1]]
        total += len(ids)
        if not ids or not write:
            continue
        order = sorted(range(len(ids)), key=ids.__getitem__)  # key order, as TableSink.write
        now = clock.now()
        with transaction.atomic():
            lock_queue(queue_id, relaxed_commit=True)  # as the engine's fetcher (asynchronous commit)
            bulk.insert_encoded(Customer, [rows[i] for i in order])
            statement = LineBlock(queue_id, ids, LineState.DONE, LineAction.UPSERT, 1, now).statement()
            with connection.cursor() as cursor:
                cursor.execute(*statement)
            SyncQueue.objects.filter(pk=queue_id).update(
                done_count=F("done_count") + len(ids), total_count=F("total_count") + len(ids), updated_at=now
            )
    child.join()
    wall = time.perf_counter() - t0
    written = Customer.objects.filter(connection=conn).count()
    if total != n or (write and written != n):
        raise RuntimeError(f"two processes wrong: {total} records fetched, {written} rows, expected {n}")
    return wall, cpu.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scenario.setup_django(migrate=False)
    from django.conf import settings

    if settings.DATABASES["default"].get("OPTIONS", {}).get("pool"):
        raise SystemExit("bench.two_process forks: run it with DB_POOL off")
    n = args.size
    up = scenario.Upstream("prerendered", stores=[(n, 0)])
    org = scenario.org()
    walls: dict[str, list[float]] = {"engine": [], "two processes": [], "child alone": [], "plain loop": []}
    child_cpu: dict[str, list[float]] = {"two processes": [], "child alone": []}
    print(f"load at start {os.getloadavg()}")
    try:
        for i in range(args.repeat):
            for what in walls:
                conn = scenario.fresh_connection(up, n, name=f"two-{i}-{what}")
                if what == "engine":
                    wall = scenario.engine_run(conn, expect=n)
                elif what == "plain loop":
                    wall, rows = plain_loop.run(
                        up.url(n),
                        os.environ["DATABASE_URL"],
                        organization_id=org.pk,
                        connection_id=conn.pk,
                        key=up.key,
                        secret=up.secret,
                    )
                    assert rows == n
                else:
                    wall, cpu = two_processes(conn, n, write=what == "two processes")
                    child_cpu[what].append(cpu)
                walls[what].append(wall)
                extra = f" (child CPU {child_cpu[what][-1]:.2f})" if what in child_cpu else ""
                print(f"{what} {wall:.2f}{extra}", flush=True)
    finally:
        up.close()
    report(f"{n:,} customers, medians of {args.repeat}", walls, child_cpu, "plain loop")


def report(title: str, walls: dict[str, list[float]], child_cpu: dict[str, list[float]], loop: str) -> None:
    """The medians as a Markdown table, each against the median of ``walls[loop]``."""
    reference = statistics.median(walls[loop])
    print(f"\n{title}; load at end {os.getloadavg()}")
    print("| run | wall | vs the plain loop | child CPU |")
    print("|---|---|---|---|")
    for what, values in walls.items():
        cpu = f"{statistics.median(child_cpu[what]):.2f}" if what in child_cpu else ""
        print(f"| {what} | {statistics.median(values):.2f} s | {reference / statistics.median(values):.2f} | {cpu} |")


if __name__ == "__main__":
    main()
