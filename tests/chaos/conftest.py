"""Fixtures for the chaos suite: a Woo-like upstream on loopback, the chaos connector kind, real worker
processes on the pytest database, and a clock past every lease for recovery."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.upstream import WooLikeUpstream, base_url, customer
from connectors.sandbox.server import serve
from tests.chaos.connector import KIND, register

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def chaos_kind(monkeypatch):
    from sync import registry

    monkeypatch.setitem(registry.KINDS, KIND, "tests.chaos.connector.connector")
    register()
    yield KIND
    registry.get_connector.cache_clear()


@pytest.fixture
def fast_retries(settings):
    settings.SYNC_HTTP_MAX_TRIES = 3
    settings.SYNC_RETRY_BASE_SECONDS = 0
    settings.SYNC_HTTP_TIMEOUT = (2.0, 2.0)
    return settings


@pytest.fixture
def upstream():
    """The upstream state (faults, counters) and its root URL, served from this process."""
    state = WooLikeUpstream()
    with serve(state.app()) as root:
        state.root = root
        yield state


@pytest.fixture
def chaos_conn(org, make_connection, chaos_kind, upstream):
    def make(
        n: int,
        *,
        delay_ms: int = 0,
        batch_size: int = 50,
        fetch_concurrency: int = 1,
        process_on_fetch: bool = True,
        fetch_group_records: int | None = None,
    ):
        config = {
            "batch_size": batch_size,
            "fetch_concurrency": fetch_concurrency,
            "process_on_fetch": process_on_fetch,
        }
        if fetch_group_records is not None:
            config["fetch_group_records"] = fetch_group_records
        return make_connection(org, kind=KIND, base_url=base_url(upstream.root, n=n, delay_ms=delay_ms), config=config)

    return make


def truth(n: int) -> dict[str, str]:
    """external id -> email, as the upstream serves them."""
    return {str(i): customer(i)["email"] for i in range(1, n + 1)}


def stored(conn) -> dict[str, str]:
    from customers.models import Customer

    rows = list(Customer.objects.filter(connection=conn).values_list("external_id", "email"))
    assert len(rows) == len({ext for ext, _ in rows}), "duplicate rows for one external id"
    return dict(rows)


def database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def start_worker(queue_id: int, *, app_name: str = "", **env: str) -> subprocess.Popen:
    """``app_name``: the worker's PostgreSQL application_name (libpq's PGAPPNAME), so a test can find this
    process's sessions in pg_stat_activity (e.g. which session blocks which, with pg_blocking_pids)."""
    full = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", "DATABASE_URL": database_url(), **env}
    full["PGAPPNAME"] = app_name or f"chaos-worker-q{queue_id}"
    return subprocess.Popen(
        [sys.executable, "-m", "tests.chaos.worker", str(queue_id)],
        cwd=ROOT,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def jump_past_leases():
    """Call it to move core.clock past every lease a dead worker holds (what the reaper sees a lease
    period later); backoff then sleeps on that clock too."""
    from django.conf import settings

    from core import clock as clock_mod

    def jump() -> clock_mod.FakeClock:
        fake = clock_mod.FakeClock(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.SYNC_LEASE_SECONDS + 60))
        clock_mod.set_clock(fake)
        return fake

    yield jump
    clock_mod.set_clock(clock_mod.SystemClock())
