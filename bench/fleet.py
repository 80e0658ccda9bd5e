"""B9, the fleet benchmark (run on purpose; PostgreSQL; the database named in DATABASE_URL is DROPPED):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/synchub_b9 python -m bench.fleet [--stores 10000] [--repeat 3]

With 10,000 connected Tiendanube stores with history (one finished run per store and resource): onboarding
them (tiendanube_import's service), one scheduler tick with every store due (all of them, and the default
per-tick cap), the scheduler-status API and admin page, the dashboard's first page, the queue list (the admin
changelist with its filters, the REST list), a staff login when every store is stale, and no-op tasks per second
through the ORM and Redis brokers with 1, 2 and 4 qcluster processes (``--brokers orm,redis``; ``orm`` is the
project's ORM broker, ops.broker.SkipLockedORM, and ``orm-django-q2`` django-q2's own dequeue for comparison).
Prints medians and the load."""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIND = "tiendanube"


def log(msg: str) -> None:
    print(f"[b9 {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def noop(*args) -> None:
    """The task the broker figures carry."""


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_fleet")
    sys.path.insert(0, ROOT)
    import django

    django.setup()


def recreate_database() -> None:
    import psycopg

    url = os.environ["DATABASE_URL"]
    name = url.rsplit("/", 1)[1].split("?")[0]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings_fleet"}
    for cmd in (["migrate", "-v0"], ["createcachetable"]):
        subprocess.run([sys.executable, "manage.py", *cmd], cwd=ROOT, env=env, check=True)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} / {five:.2f}"


# --- Fleet ----------------------------------------------------------------------------------------------------
def onboard(org, n: int) -> float:
    from connectors.models import Connection
    from connectors.tiendanube import onboarding

    Connection.objects.filter(kind=KIND).delete()
    rows = [{"store_id": str(1_000_000 + i), "access_token": f"bench-token-{i:06d}-abcdef"} for i in range(n)]
    started = time.perf_counter()
    report = onboarding.stores_import(organization=org, rows=rows, first_syncs_per_minute=600)
    elapsed = time.perf_counter() - started
    assert report.created == n, report
    return elapsed


def add_history() -> None:
    """One finished run per store and resource (queues, statuses), and a last success on each unit."""
    import datetime as dt

    from django.db import transaction

    from connectors.models import Connection
    from core import clock
    from sync.models import Lane, QueueState, RunSchedule, StatusState, SyncQueue, SyncStatus

    now = clock.now()
    conns = list(Connection.objects.filter(kind=KIND).values_list("pk", "organization_id"))
    with transaction.atomic():
        for start in range(0, len(conns), 2000):
            chunk = conns[start : start + 2000]
            queues = [
                SyncQueue(
                    organization_id=org_id,
                    connection_id=pk,
                    resource=res,
                    lane=Lane.RUN,
                    state=QueueState.DONE,
                    is_active=False,
                    total_count=10,
                    done_count=10,
                    started_at=now - dt.timedelta(minutes=10),
                    finished_at=now - dt.timedelta(minutes=9),
                )
                for pk, org_id in chunk
                for res in ("products", "orders", "customers")
            ]
            SyncQueue.objects.bulk_create(queues, batch_size=2000)
            # The per-resource failure streaks a finished run leaves (runpolicy.streak_record; alerting reads
            # them): three more RunSchedule rows per store beside its whole-connection unit.
            RunSchedule.objects.bulk_create(
                [
                    RunSchedule(
                        organization_id=q.organization_id,
                        connection_id=q.connection_id,
                        resource=q.resource,
                        last_sync_at=q.finished_at,
                        last_success_at=q.finished_at,
                    )
                    for q in queues
                ],
                batch_size=2000,
            )
            SyncStatus.objects.bulk_create(
                [
                    SyncStatus(
                        organization_id=q.organization_id,
                        connection_id=q.connection_id,
                        resource=q.resource,
                        state=StatusState.SUCCESS,
                        last_queue=q,
                        started_at=q.started_at,
                        finished_at=q.finished_at,
                        last_success_at=q.finished_at,
                    )
                    for q in queues
                ],
                batch_size=2000,
            )
        RunSchedule.objects.filter(connection__kind=KIND, resource="").update(
            # Fresh successes: the staff login below must not trigger Tiendanube's login sync of 10,000 stores.
            last_sync_at=now,
            last_success_at=now,
            tier="high",
        )
    vacuum_analyze(vacuum=False)


def vacuum_analyze(*, vacuum: bool = True) -> None:
    """What autovacuum does on a real deployment within a minute or so of a bulk change: planner statistics
    (ANALYZE) and, after the ticks' churn (every tick rewrites 10,000 unit rows), dead rows made reusable
    (VACUUM). The bench's PostgreSQL runs with autovacuum off, so without this the pages are planned for
    near-empty tables (0.1-0.3 s slower) and scan every dead row the ticks left."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE" if vacuum else "ANALYZE")


def all_due() -> None:
    from django.db import connection
    from django_q.models import OrmQ

    from sync.models import RunSchedule

    OrmQ.objects.all().delete()
    # Everything due, spread over the last 5 minutes (as after a short outage).
    RunSchedule.objects.filter(connection__kind=KIND, resource="").update(queued_at=None)
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE sync_runschedule SET next_sync_at = now() - (id % 300) * interval '1 second' WHERE resource = ''"
        )


def tick(limit: int | None) -> tuple[float, float, int]:
    from sync import scheduler

    all_due()
    started = time.perf_counter()
    report = scheduler.tick(KIND, limit=limit)
    return time.perf_counter() - started, report.max_chunk_seconds, report.enqueued


def timed_get(client, url: str) -> tuple[float, int, int]:
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    reset_queries()
    with CaptureQueriesContext(connection) as ctx:
        started = time.perf_counter()
        response = client.get(url)
        content = response.content
        elapsed = time.perf_counter() - started
    assert response.status_code == 200, (url, response.status_code)
    return elapsed, len(content), len(ctx.captured_queries)


def fleet_phase(args) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django_q.conf import Conf

    from connectors.models import Connection
    from sync.models import Membership, Organization

    Conf.SYNC = False
    org = Organization.objects.create(name="Fleet", slug="fleet")
    user = get_user_model().objects.create_user("fleet", password="pw-fleet-bench", is_staff=True)
    Membership.objects.create(user=user, organization=org)
    out: dict = {"stores": args.stores, "load at start": load()}
    runs = []
    for i in range(args.repeat):
        runs.append(onboard(org, args.stores))
        log(f"onboarding #{i + 1}: {runs[-1]:.2f}s")
    out["onboarding s"] = statistics.median(runs)
    add_history()
    log("history added")
    for label, limit in (("tick all due", args.stores), ("tick default cap", None)):
        results = [tick(limit) for _ in range(args.repeat)]
        out[f"{label} s"] = statistics.median(r[0] for r in results)
        out[f"{label} longest transaction s"] = max(r[1] for r in results)
        out[f"{label} enqueued"] = results[0][2]
        log(f"{label}: {results}")
    all_due()
    vacuum_analyze()
    client = Client()
    client.force_login(user)
    store = str(1_000_000 + args.stores // 2)  # a store id in the middle of the fleet
    store_pk = Connection.objects.get(kind=KIND, external_account_id=store).pk
    queues = "/admin/sync/syncqueue/"
    for label, url, repeat in (
        ("status API", "/api/tiendanube/scheduler/status/", args.repeat),
        ("status API late page", "/api/tiendanube/scheduler/status/?late=1", args.repeat),
        ("status admin", "/admin/tiendanube/storeschedule/", args.repeat),
        ("status admin late", "/admin/tiendanube/storeschedule/?late=yes", args.repeat),
        ("dashboard first page", "/admin/sync-dashboard/", 1 if not args.dashboard_repeat else args.repeat),
        # The queue list (3 queues of history per store): the admin changelist unfiltered, with its filters
        # (state, kind, resource, one store by its id in the connection search box) and with a search that
        # matches every store (the worst case of the box), and the REST list with filters.
        ("queue list", queues, args.repeat),
        ("queue list filtered", f"{queues}?state__exact=done&kind={KIND}&resource=orders&conn={store}", args.repeat),
        ("queue list search matching every store", f"{queues}?conn=store", args.repeat),
        ("queue API filtered", "/api/queues?state=done&resource=orders", args.repeat),
        ("queue API one store", f"/api/queues?connection={store_pk}", args.repeat),
    ):
        if label.startswith("dashboard") and args.skip_dashboard:
            continue
        results = [timed_get(client, url) for _ in range(repeat)]
        out[f"{label} s"] = statistics.median(r[0] for r in results)
        out[f"{label} bytes"] = results[0][1]
        out[f"{label} queries"] = results[0][2]
        log(f"{label}: {results}")
    out.update(login_with_every_store_stale(user))
    out["load at end"] = load()
    return out


def login_with_every_store_stale(user) -> dict:
    """A staff login when every store's last success is older than its tier (after an outage): the login sync
    enqueues the stalest in bulk, at most SYNC_TICK_MAX_ENQUEUE, inside the login request."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django_q.models import OrmQ

    from sync.models import RunSchedule

    OrmQ.objects.all().delete()
    RunSchedule.objects.filter(connection__kind=KIND, resource="").update(last_success_at=None, queued_at=None)
    with CaptureQueriesContext(connection) as ctx:
        started = time.perf_counter()
        Client().force_login(user)
        elapsed = time.perf_counter() - started
    return {
        "login, every store stale s": elapsed,
        "login, every store stale queries": len(ctx.captured_queries),
        "login, every store stale enqueued": OrmQ.objects.count(),
    }


# --- Brokers ----------------------------------------------------------------------------------------------------
def broker_child(args) -> None:
    """In a process whose settings carry the broker: start N clusters, enqueue the tasks, time them."""
    from django_q.brokers import get_broker
    from django_q.models import OrmQ, Success

    from sync.scheduler import enqueue_many

    broker = get_broker()
    broker.purge_queue()
    OrmQ.objects.all().delete()
    Success.objects.all().delete()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings_fleet"}
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(args.clusters)
    ]
    try:
        time.sleep(6)  # clusters up and idle before the clock starts
        from django.db import transaction

        with transaction.atomic():
            for start in range(0, args.tasks, 1000):
                enqueue_many(
                    "bench.fleet.noop", [(i,) for i in range(start, min(args.tasks, start + 1000))], group="b9"
                )
        started = time.perf_counter()
        deadline = started + args.broker_timeout
        done = 0
        while time.perf_counter() < deadline:
            done = Success.objects.filter(group="b9").count()
            if done >= args.tasks:
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    print(json.dumps({"done": done, "seconds": elapsed, "tasks_per_s": done / elapsed, "load": load()}))


def brokers_phase(args) -> dict:
    out = {}
    combos = [
        (b, n, age)
        for b in args.brokers
        for n in args.cluster_counts
        for age in (("300", "0") if b == "orm" and n <= 2 and args.compare_conn_age else ("300",))
    ]
    for broker, n, age in combos:
        env = {
            **os.environ,
            "BENCH_BROKER": broker,
            "DJANGO_SETTINGS_MODULE": "bench.settings_fleet",
            "Q_CONN_MAX_AGE": age,
        }
        cmd = [
            sys.executable,
            "-m",
            "bench.fleet",
            "--broker-child",
            "--clusters",
            str(n),
            "--tasks",
            str(args.tasks),
            "--broker-timeout",
            str(args.broker_timeout),
        ]
        result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        row = json.loads(result.stdout.strip().splitlines()[-1])
        label = f"{broker} {n} cluster(s)" + ("" if age == "300" else " without keep-alive (Q_CONN_MAX_AGE=0)")
        out[label] = row
        log(f"{label}: {row}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--brokers", default="orm,redis")
    parser.add_argument("--cluster-counts", default="1,2,4")
    parser.add_argument("--broker-timeout", type=float, default=300)
    parser.add_argument("--compare-conn-age", action="store_true")
    parser.add_argument("--skip-fleet", action="store_true")
    parser.add_argument("--skip-brokers", action="store_true")
    parser.add_argument("--skip-dashboard", action="store_true")
    parser.add_argument("--dashboard-repeat", action="store_true")
    parser.add_argument("--broker-child", action="store_true")
    parser.add_argument("--clusters", type=int, default=1)
    args = parser.parse_args()
    args.brokers = [b for b in args.brokers.split(",") if b]
    args.cluster_counts = [int(n) for n in args.cluster_counts.split(",") if n]
    if args.broker_child:
        setup_django()
        broker_child(args)
        return
    if "DATABASE_URL" not in os.environ or not os.environ["DATABASE_URL"].startswith("postgres"):
        sys.exit("B9 needs DATABASE_URL=postgres://... (the database is dropped and re-created)")
    recreate_database()
    setup_django()
    results = {"cpus": os.cpu_count()}
    if not args.skip_fleet:
        results["fleet"] = fleet_phase(args)
    if not args.skip_brokers:
        results["brokers"] = brokers_phase(args)
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
