"""Shared set-up for the benchmarks: environment, a fresh database, the upstream process, the connector.

Switching B1/B2/B4/B8 to the real WooCommerce connector and sandbox is a change here: set ``KIND`` and
``CONNECTOR_PATH`` to the real kind (and drop the KINDS patch), point ``upstream_url`` at its sandbox, and
give the connection the credentials its client needs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/synchub_bench"
KIND = "benchwoo"
CONNECTOR_PATH = "bench.connector.connector"
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
    register_kind()


def register_kind() -> None:
    from connectors import registry

    registry.KINDS[KIND] = CONNECTOR_PATH
    registry.get_connector.cache_clear()


class Upstream:
    """The upstream in its own process, so its CPU does not share the measured process's GIL."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.upstream"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        if not line.startswith("http://127.0.0.1:"):
            self.close()
            raise RuntimeError(f"bench upstream did not start (said {line!r})")
        self.root = line

    def url(self, n: int, delay_ms: int = 0) -> str:
        from bench.upstream import base_url

        return base_url(self.root, n=n, delay_ms=delay_ms)

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


def make_connection(base_url: str, *, name: str, fetch_concurrency: int = 1, batch_size: int | None = None):
    from connectors.models import Connection

    conn, _ = Connection.objects.update_or_create(
        organization=org(),
        kind=KIND,
        name=name,
        defaults={
            "base_url": base_url,
            "config": {"fetch_concurrency": fetch_concurrency, **({"batch_size": batch_size} if batch_size else {})},
            "needs_reauth": False,
        },
    )
    return conn


def reset_tables() -> None:
    """Empty the domain table and the engine's run tables (a 'first run' starts from nothing)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE customers_customer, sync_syncqueueline, sync_syncactivity, sync_syncstatus, sync_syncqueue"
        )


def engine_run(conn, *, expect: int) -> float:
    """Trigger a run and work its queue to the end in this process; return the seconds. Checks the result."""
    from customers.models import Customer
    from sync.engine import run_queue
    from sync.services import sync_start

    t0 = time.perf_counter()
    result = sync_start(connection=conn, resource=RESOURCE, enqueue=False, full_scan=True)
    state = run_queue(result.queue.pk)
    elapsed = time.perf_counter() - t0
    q = result.queue
    q.refresh_from_db()
    rows = Customer.objects.filter(connection=conn, deleted_at__isnull=True).count()
    if state != "done" or q.done_count != expect or rows != expect:
        raise RuntimeError(
            f"engine run wrong: state={state} done={q.done_count} rows={rows} expected={expect} "
            f"error={q.last_error or q.fetch_error}"
        )
    return elapsed
