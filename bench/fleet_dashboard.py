"""``python -m bench.fleet_dashboard [--stores 1000,10000] [--repeat 5]``: the sync dashboard at fleet scale.

Creates N Tiendanube connections with one finished run (queue + status + run schedule) each, in bulk, in a
benchmark database (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/synchub_ui_fleet_bench; DROPPED
and re-created), then times the dashboard's first page (server time through Django's test client, HTML size,
query count) and the queue changelist. Targets (issue 21): dashboard <= 300 ms and <= 300 KB, queries constant.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from bench import scenario

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/synchub_ui_fleet_bench"


def populate(n: int, start: int = 0) -> None:
    from connectors.models import Connection
    from core import clock
    from sync.models import Organization, RunSchedule, SyncQueue, SyncStatus

    org, _ = Organization.objects.get_or_create(slug="fleet", defaults={"name": "Fleet"})
    now = clock.now()
    for lo in range(start, start + n, 2000):
        hi = min(lo + 2000, start + n)
        conns = Connection.objects.bulk_create(
            Connection(
                organization=org,
                kind="tiendanube",
                name=f"Tiendanube store {i:05d}",
                external_account_id=str(100_000 + i),
                base_url=f"https://api.tiendanube.com/v1/{100_000 + i}",
            )
            for i in range(lo, hi)
        )
        queues = SyncQueue.objects.bulk_create(
            SyncQueue(
                organization=org,
                connection=c,
                resource="products",
                is_active=False,
                state="done",
                total_count=25,
                done_count=25,
                fetch_done=True,
                started_at=now,
                finished_at=now,
                active_seconds=1.5,
            )
            for c in conns
        )
        SyncStatus.objects.bulk_create(
            SyncStatus(
                organization=org,
                connection=c,
                resource="products",
                state="success",
                records_synced=25,
                last_queue=q,
                last_success_at=now,
                finished_at=now,
            )
            for c, q in zip(conns, queues, strict=True)
        )
        RunSchedule.objects.bulk_create(
            RunSchedule(organization=org, connection=c, resource="", tier="cold", next_sync_at=now) for c in conns
        )


def measure(url: str, repeat: int) -> tuple[float, int, int]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user, _ = get_user_model().objects.get_or_create(
        username="fleet-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    client.get(url)  # warm: templates, connector registry
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - t0)
        assert response.status_code == 200, response.status_code
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    return statistics.median(times), len(response.content), len(ctx)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", default="1000,10000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", DEFAULT_DB)
    scenario.configure_env()
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")
    scenario.recreate_database(os.environ["DATABASE_URL"])
    scenario.setup_django(migrate=True)
    from django.conf import settings

    if "testserver" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS.append("testserver")
    done = 0
    print(f"load average: {os.getloadavg()}")
    print("| stores | page | server time (median) | HTML | queries |")
    print("|---|---|---|---|---|")
    for n in [int(x) for x in args.stores.split(",")]:
        t0 = time.perf_counter()
        populate(n - done, start=done)
        done = n
        print(f"(created {n} stores in {time.perf_counter() - t0:.1f}s)", flush=True)
        for label, url in (
            ("dashboard", "/admin/sync-dashboard/"),
            ("dashboard, search", "/admin/sync-dashboard/?q=store+0999"),
            ("dashboard, failing", "/admin/sync-dashboard/?show=failing"),
            ("dashboard, stale", "/admin/sync-dashboard/?show=stale"),
            ("dashboard, tier", "/admin/sync-dashboard/?tier=cold&page=7"),
            ("queue list", "/admin/sync/syncqueue/"),
            ("queue list, connection filter", "/admin/sync/syncqueue/?conn=store+0999"),
        ):
            seconds, size, queries = measure(url, args.repeat)
            print(f"| {n:,} | {label} | {seconds * 1000:.0f} ms | {size / 1024:.0f} KB | {queries} |", flush=True)


if __name__ == "__main__":
    main()
