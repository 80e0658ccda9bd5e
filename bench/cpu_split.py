"""``python -m bench.cpu_split [--size N] [--repeat R]``: where the CPU goes, engine vs plain loop.

For each run (interleaved, first run on an empty table, against the pre-rendered upstream; the engine's
second run right after its first, over the same unchanged store): wall time, CPU
of this process (every thread: the engine's fetch threads included), CPU of the PostgreSQL backend serving
the run (read with psutil just before its connection closes) and CPU of the upstream process. Uses the
database in DATABASE_URL as it is (migrated; run ``python -m bench --only B2 --repeat 1`` once to set it up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psutil
import psycopg

from bench import plain_loop, scenario


class _Measured(psycopg.Connection):
    """A psycopg connection that reads its backend's CPU time just before closing."""

    last_cpu = 0.0

    def close(self) -> None:
        if not self.closed:
            t = psutil.Process(self.info.backend_pid).cpu_times()
            type(self).last_cpu = t.user + t.system
        super().close()


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


class _Backends:
    """CPU of every PostgreSQL backend Django opens in this process during a run (the engine's writer
    thread has a connection of its own): read when each connection opens and just before it closes."""

    def __init__(self) -> None:
        self.start: dict[int, float] = {}
        self.total = 0.0

    def __enter__(self):
        from django.db import connection
        from django.db.backends.postgresql.base import DatabaseWrapper
        from django.db.backends.signals import connection_created

        self._close = DatabaseWrapper.close
        backends = self

        def close(wrapper):
            if wrapper.connection is not None and not wrapper.connection.closed:
                backends._read(wrapper.connection.info.backend_pid)
            return backends._close(wrapper)

        DatabaseWrapper.close = close
        connection_created.connect(self._created)
        connection.ensure_connection()
        pid = connection.connection.info.backend_pid
        self.start[pid] = _cpu(psutil.Process(pid))
        return self

    def _created(self, sender, connection, **kwargs) -> None:
        pid = connection.connection.info.backend_pid
        self.start[pid] = _cpu(psutil.Process(pid))

    def _read(self, pid: int) -> None:
        if pid in self.start:
            self.total += _cpu(psutil.Process(pid)) - self.start.pop(pid)

    def __exit__(self, *exc) -> None:
        from django.db.backends.postgresql.base import DatabaseWrapper
        from django.db.backends.signals import connection_created

        connection_created.disconnect(self._created)
        DatabaseWrapper.close = self._close
        for pid in list(self.start):
            self._read(pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scenario.setup_django(migrate=False)
    n = args.size
    up = scenario.Upstream("prerendered", stores=[(n, 0)])
    me, upstream = psutil.Process(), psutil.Process(up.proc.pid)
    org = scenario.org()
    results: dict[str, list[tuple[float, float, float, float]]] = {
        "engine": [],
        "engine, second run (nothing changed)": [],
        "plain loop": [],
        "no-parse": [],
    }
    print(f"load at start {os.getloadavg()}")
    try:
        for _ in range(args.repeat):
            for what in results:
                second = what.startswith("engine, second")
                if not second:  # the second run works on the rows the first one just wrote
                    scenario.reset_tables()
                    conn = scenario.make_connection(up, up.url(n), name=f"split-{what}")
                scenario.checkpoint()
                c0, u0, t0 = _cpu(me), _cpu(upstream), time.perf_counter()
                if what.startswith("engine"):
                    with _Backends() as backends:
                        scenario.engine_run(conn, expect=n)
                    pg = backends.total
                else:
                    fn = plain_loop.run if what == "plain loop" else plain_loop.run_noparse
                    real = plain_loop.psycopg.connect
                    plain_loop.psycopg.connect = _Measured.connect
                    try:
                        _, rows = fn(
                            up.url(n),
                            os.environ["DATABASE_URL"],
                            organization_id=org.pk,
                            connection_id=conn.pk,
                            key=up.key,
                            secret=up.secret,
                        )
                    finally:
                        plain_loop.psycopg.connect = real
                    assert rows == n
                    pg = _Measured.last_cpu  # a fresh backend: all its CPU is this run's
                wall = time.perf_counter() - t0
                results[what].append((wall, _cpu(me) - c0, pg, _cpu(upstream) - u0))
                print(what, " ".join(f"{x:.2f}" for x in results[what][-1]), flush=True)
    finally:
        up.close()
    print(f"\n{n:,} customers, medians of {args.repeat} (seconds); load at end {os.getloadavg()}")
    print("| run | wall | client process CPU | PostgreSQL backend CPU | upstream CPU |")
    print("|---|---|---|---|---|")
    for what, rows in results.items():
        med = [statistics.median(col) for col in zip(*rows, strict=True)]
        print(f"| {what} | " + " | ".join(f"{x:.2f}" for x in med) + " |")


if __name__ == "__main__":
    main()
