"""Shared set-up for the benchmarks: environment, a fresh database, the upstream process, the connection.

B1/B2/B4/B8 run the real WooCommerce connector (``connectors/woocommerce``: its client and auth, its
customers resource with concurrent offset paging, its mapper) against a fake Woo upstream in its own
process: by default the pre-rendered one (``bench/prerendered.py``), or the real Woo sandbox serving
generated stores (``bench/woo_upstream.py``, ``--upstream sandbox``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/synchub_bench"
KIND = "woocommerce"
RESOURCE = "customers"


def configure_env() -> None:
    """Environment for config.settings (before django.setup): loopback upstream, quiet logs, PostgreSQL."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DATABASE_URL", DEFAULT_DB)
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "YmVuY2gta2V5LWZvci1maWVsZC1lbmNyeXB0aW9uLTA=")
    os.environ["OUTBOUND_ALLOW_LOOPBACK"] = "true"
    os.environ.setdefault("LOG_LEVEL", "ERROR")


def recreate_database(url: str) -> None:
    """DROP and CREATE the benchmark database (never the default one: refuse names not containing 'bench')."""
    from urllib.parse import urlsplit

    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing to recreate database {name!r}: its name must contain 'bench'")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(*, migrate: bool) -> None:
    configure_env()
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)


class Upstream:
    """The fake Woo upstream in its own process, so its CPU does not share the measured process's GIL.

    ``kind="prerendered"`` (the default): bench/prerendered.py, page bodies built once at start for every
    ``(customers, delay ms)`` in ``stores`` (a store asked for later is built on its first request).
    ``kind="sandbox"``: the real Woo sandbox generating each page per request (bench/woo_upstream.py)."""

    def __init__(self, kind: str = "prerendered", stores: list[tuple] = ()) -> None:
        from bench.prerendered import KEY, SECRET

        self.kind = kind
        self.key, self.secret = KEY, SECRET
        if kind == "prerendered":
            cmd = [sys.executable, "-m", "bench.prerendered"]
            for spec in dict.fromkeys(stores):  # (n, delay) or (n, delay, "orders")
                cmd += ["--store", ":".join(map(str, spec))]
        elif kind == "sandbox":
            cmd = [sys.executable, "-m", "bench.woo_upstream"]
        else:
            raise ValueError(f"unknown upstream kind {kind!r}")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        if not line.startswith("http://127.0.0.1:"):
            self.close()
            raise RuntimeError(f"bench upstream did not start (said {line!r})")
        self.root = line

    def live(self, n: int, *, day: int, per_mille: int, delay_ms: int = 0) -> int:
        """The pre-rendered store ``day`` days on, ``per_mille`` of its customers having logged in that day
        (bench.prerendered.Store.live); how many did."""
        import http.client
        import json
        from urllib.parse import urlsplit

        if self.kind != "prerendered":
            raise ValueError("only the pre-rendered upstream has live stores")
        parts = urlsplit(self.root)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        try:
            conn.request("POST", f"/n{n}/d{delay_ms}/bench/live?day={day}&active={per_mille}")
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"bench upstream refused the live store: {response.status} {body[:200]!r}")
        return json.loads(body)["visited"]

    def url(self, n: int, delay_ms: int = 0) -> str:
        # Both upstreams put a store at /n<customers>/d<delay ms> (a store in a subdirectory).
        return f"{self.root.rstrip('/')}/n{n}/d{delay_ms}"

    def close(self) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def org():
    from sync.models import Organization

    return Organization.objects.get_or_create(slug="bench", defaults={"name": "Bench"})[0]


def make_connection(upstream: Upstream, base_url: str, *, name: str, batch_size: int | None = None):
    """A WooCommerce connection to one generated store, with the sandbox's keys (stored encrypted)."""
    from connectors.models import Connection

    conn, _ = Connection.objects.update_or_create(
        organization=org(),
        kind=KIND,
        name=name,
        defaults={
            "base_url": base_url,
            "config": {"batch_size": batch_size} if batch_size else {},
            "needs_reauth": False,
        },
    )
    conn.credentials = {"consumer_key": upstream.key, "consumer_secret": upstream.secret}
    conn.save(update_fields=["credentials_encrypted"])
    return conn


@contextlib.contextmanager
def page_concurrency(n: int) -> Iterator[None]:
    """Run the Woo connector with ``n`` concurrent page fetches (WOOCOMMERCE_PAGE_CONCURRENCY, read per run)."""
    from connectors.woocommerce import conf

    before = conf.PAGE_CONCURRENCY
    conf.PAGE_CONCURRENCY = n
    try:
        yield
    finally:
        conf.PAGE_CONCURRENCY = before


def reset_tables(domain: str = "customers_customer") -> None:
    """Empty the domain table (``domain``: bench.orders empties the orders') and the engine's run tables, page
    memos included (a 'first run' starts from nothing)."""
    from django.db import connection

    with connection.cursor() as cur:
        if connection.vendor == "sqlite":
            for table in (
                "mdm_exportrun",
                domain,
                "sync_syncqueueline",
                "sync_syncactivity",
                "sync_pagememo",
            ):
                cur.execute(f"DELETE FROM {table}")
            cur.execute("DELETE FROM sync_syncstatus")
            cur.execute("DELETE FROM sync_syncqueue")
            return
        cur.execute(
            # CASCADE: other apps' tables point at queues (mdm_exportrun); the bench never fills them.
            f"TRUNCATE {domain}, sync_syncqueueline, sync_syncactivity, sync_syncstatus, sync_syncqueue, "
            "sync_pagememo CASCADE"
        )


def checkpoint() -> None:
    """Before each timed run: write out what earlier runs left in the WAL and in dirty buffers, so no run pays
    for the one before it. A 100,000-customer run writes 140-175 MB of WAL, so with the default
    max_wal_size (1 GB) a checkpoint fell inside every sixth or seventh run, whichever side's it was (a loop
    run took 6.98 s during one, 5.51 s just before). As pgbench's documentation advises; not timed."""
    from django.db import DatabaseError, connection

    global _checkpoint_refused
    if connection.vendor == "sqlite":
        # The same on SQLite: fold the write-ahead log (reset_tables' DELETEs of the previous run's rows) back
        # into the database, so the next run's automatic checkpoints do not pay for them.
        with connection.cursor() as cur:
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    if connection.vendor != "postgresql" or _checkpoint_refused:
        return
    try:
        with connection.cursor() as cur:
            cur.execute("CHECKPOINT")
    except DatabaseError as exc:  # needs a superuser or pg_checkpoint (PostgreSQL 15): run without, say so once
        _checkpoint_refused = True
        print(f"[bench] no CHECKPOINT before timed runs ({exc.__class__.__name__}: {exc}".strip() + ")", flush=True)


_checkpoint_refused = False


last_rows_written = 0  # rows the last engine_run wrote


def engine_run(conn, *, expect: int) -> float:
    """Trigger a run and work its queue to the end in this process; return the seconds. Checks the result."""
    from core import clock
    from customers.models import Customer
    from sync.engine import run_queue
    from sync.services import sync_start

    global last_rows_written
    started = clock.now()
    t0 = time.perf_counter()
    result = sync_start(connection=conn, resource=RESOURCE, enqueue=False, full_scan=True)
    state = run_queue(result.queue.pk)
    elapsed = time.perf_counter() - t0
    q = result.queue
    q.refresh_from_db()
    rows = Customer.objects.filter(connection=conn, deleted_at__isnull=True).count()
    # Rows this run wrote (synced_at is when a row was last written): 0 for a run over unchanged data.
    last_rows_written = Customer.objects.filter(connection=conn, synced_at__gte=started).count()
    if state != "done" or q.done_count != expect or rows != expect:
        raise RuntimeError(
            f"engine run wrong: state={state} done={q.done_count} rows={rows} expected={expect} "
            f"error={q.last_error or q.fetch_error}"
        )
    return elapsed


def fresh_sqlite(path) -> None:
    """Point Django at a new SQLite file at ``path`` (any old file and its WAL deleted) and migrate it."""
    from pathlib import Path

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    setup_django(migrate=True)


def sqlite_loop_run(upstream: Upstream, n: int, path, conn) -> float:
    """One run of the plain SQLite loop (bench/plain_loop.run_sqlite) into ``path`` for ``conn``; checks it wrote
    ``n`` rows and returns its seconds. Django's connection is closed first: the loop has the file to itself,
    as the engine has."""
    from django.db import connection

    from bench import plain_loop

    connection.close()
    seconds, rows = plain_loop.run_sqlite(
        upstream.url(n),
        str(path),
        organization_id=conn.organization_id,
        connection_id=conn.pk,
        key=upstream.key,
        secret=upstream.secret,
    )
    if rows != n:
        raise RuntimeError(f"plain loop wrote {rows} rows, expected {n}")
    return seconds


def fresh_connection(upstream: Upstream, n: int, *, name: str):
    """Before each timed first run: the tables emptied, a connection to the store of ``n`` customers, the
    write-ahead log folded back (checkpoint)."""
    reset_tables()
    conn = make_connection(upstream, upstream.url(n), name=name)
    checkpoint()
    return conn


def load_line(start: tuple[float, float, float]) -> str:
    """The machine's load average at a run's start (``os.getloadavg()`` then) and now, for a report's foot."""
    fmt = " / ".join
    return (
        f"load avg (1/5/15 min) at start {fmt(f'{x:.2f}' for x in start)}, at end "
        f"{fmt(f'{x:.2f}' for x in os.getloadavg())}"
    )


def sizes_arg(text: str) -> list[int]:
    """``--size``'s value: one or more positive counts, comma-separated (``100000,300000``), in that order."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count or a comma-separated list of counts: {text!r}") from None
    if not sizes or min(sizes) <= 0 or len(set(sizes)) != len(sizes):
        raise argparse.ArgumentTypeError(f"positive, distinct counts please: {text!r}")
    return sizes


def round_order(items, i: int) -> list:
    """``items`` (sizes, or the sides of a comparison) in round ``i``'s order: as given in even rounds, reversed
    in odd ones, so that none always runs first (a position that favours its runs favours each as often)."""
    return list(items) if i % 2 == 0 else list(reversed(items))
