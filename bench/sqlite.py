"""``python -m bench.sqlite [--size N[,N...]] [--repeat R] [--path FILE]``: B1 on SQLite, the embedded default.

The engine (the real WooCommerce connector, default settings, on the project's SQLite settings: WAL,
synchronous=NORMAL, IMMEDIATE transactions) against ``plain_loop.run_sqlite`` (sequential pages, ``orjson``,
one ``executemany`` of ``INSERT ... ON CONFLICT DO UPDATE`` per page, one transaction), both first runs on
an empty table, interleaved (each round every size; the side that goes first alternates round by round),
against the pre-rendered upstream in its own process. The database file is DELETED and re-created (default:
a file in the system's temporary directory). Prints medians and the ratio for each size, with several sizes
the engine's rate at the largest vs the smallest, and the machine's load at start and end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import scenario


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sqlite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=scenario.sizes_arg, default=[10_000], dest="sizes", metavar="N[,N...]")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--path", default=str(Path(tempfile.gettempdir()) / "synchub_bench_sqlite.sqlite3"))
    args = parser.parse_args(argv)
    path = Path(args.path)
    scenario.fresh_sqlite(path)
    load_start = os.getloadavg()
    sizes = args.sizes
    up = scenario.Upstream("prerendered", stores=[(n, 0) for n in sizes])
    results = {n: {"engine": [], "plain loop (SQLite)": []} for n in sizes}
    try:
        for i in range(args.repeat):
            for n in scenario.round_order(sizes, i):  # the sizes' order alternates too
                # The side that goes first alternates: a position that favours its run favours each as often.
                for what in scenario.round_order(("engine", "plain loop (SQLite)"), i):
                    # Both sides start with the write-ahead log folded back (before, only the loop did, by closing
                    # the connection: the engine's run paid for checkpointing reset_tables' DELETEs).
                    conn = scenario.fresh_connection(up, n, name=f"sqlite-{what}")
                    if what == "engine":
                        seconds = scenario.engine_run(conn, expect=n)
                    else:
                        seconds = scenario.sqlite_loop_run(up, n, path, conn)
                    results[n][what].append(seconds)
                    stamp = time.strftime("%H:%M:%S")
                    print(f"[bench.sqlite {stamp}] {what}, {n:,} #{i + 1}: {seconds:.2f}s", file=sys.stderr)
    finally:
        up.close()
    rate = {}
    for n in sizes:
        engine, loop = (statistics.median(results[n][what]) for what in ("engine", "plain loop (SQLite)"))
        rate[n] = n / engine
        print(f"\nSQLite, {n:,} customers, first run on an empty table, medians of {args.repeat}")
        print("| run | median | rec/s | ratio |")
        print("|---|---|---|---|")
        print(f"| plain loop (SQLite) | {loop:.2f} s | {n / loop:,.0f} | 1.00 |")
        print(f"| engine | {engine:.2f} s | {n / engine:,.0f} | **{loop / engine:.2f}** (target >= 0.6) |")
        rounds = " / ".join(f"{lp / en:.2f}" for en, lp in zip(*results[n].values(), strict=True))
        print(f"\nratio per round: {rounds}")
    if len(sizes) > 1:
        small, big = min(sizes), max(sizes)
        ratio = rate[big] / rate[small]
        print(
            f"\nengine's rate at {big:,} vs at {small:,}: {rate[big]:,.0f} vs {rate[small]:,.0f} rec/s, "
            f"**{ratio:.2f}** (target >= 0.90: {'met' if ratio >= 0.9 else 'MISSED'})"
        )
    print(f"\n{scenario.load_line(load_start)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
