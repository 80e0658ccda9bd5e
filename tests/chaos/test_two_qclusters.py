"""Two real ``manage.py qcluster`` processes (django-q2, on the ORM broker and on the Redis broker) on the
pytest PostgreSQL database,
working the same queues: five runs (three Woo-like connections, a Lightspeed connection's customers and
products, its OAuth token expired) started through the product's own ``sync_start`` (which enqueues),
then, once they are under way, a second task for every queue (a re-delivery): it joins the queue being
fetched and claims lines next to the first worker, in whichever cluster took it.

Checked: every task delivered to exactly one cluster, every line upserted exactly once across all the
processes, every queue ``done`` and the broker empty, each domain table equal to its upstream, one token
refresh for the Lightspeed connection whose two resources the clusters share.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from django_q.models import OrmQ, Success, Task
from django_q.tasks import async_task

from bench.upstream import base_url
from commerce.models import Product
from connectors.lightspeed.sandbox import LightspeedSandbox
from connectors.sandbox.server import serve
from customers.models import Customer
from sync import services
from sync.models import LineState, QueueState, StatusState, SyncQueue, SyncQueueLine, SyncStatus
from tests.chaos.conftest import ROOT, database_url, stored, truth

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WOO_SIZES = (700, 450, 300)  # three Woo-like connections, customers
LS_CUSTOMERS, LS_PRODUCTS, LS_PAGE = 180, 120, 20
DEADLINE = 45.0  # seconds for everything to settle; the whole test takes a few


@pytest.fixture
def ls_sandbox(monkeypatch):
    sb = LightspeedSandbox(customers=LS_CUSTOMERS, products=LS_PRODUCTS, customer_groups=2)
    with serve(sb.app()) as base:
        sb.base = base
        sb.env = {
            "LIGHTSPEED_PAGE_SIZE": str(LS_PAGE),
            "LIGHTSPEED_CLIENT_ID": sb.client_id,
            "LIGHTSPEED_CLIENT_SECRET": sb.client_secret,
        }
        for key, value in sb.env.items():
            monkeypatch.setenv(key, value)
        yield sb


REDIS_URL = os.environ.get("CHAOS_REDIS_URL", "redis://127.0.0.1:6379/0")


class Broker:
    """Which django-q2 broker the test process and its qclusters share, and how to see it empty."""

    def __init__(self, kind: str, env: dict[str, str]):
        self.kind, self.env = kind, env

    def empty(self) -> bool:
        if self.kind == "orm":
            return not OrmQ.objects.exists()  # waiting and leased (in-flight) tasks alike
        from django_q.brokers import get_broker

        return get_broker().queue_size() == 0  # Redis has no in-flight list: a popped task is gone


def _redis_or_skip() -> None:
    """CI (CI=true) has Redis at 127.0.0.1:6379: unreachable there is a failure; locally a skip."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        message = f"Redis is not reachable at {REDIS_URL}: {exc.__class__.__name__}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI runs the two-qcluster tests on both brokers)")
        pytest.skip(message)


@pytest.fixture(params=["orm", "redis"])
def broker_not_inline(request, monkeypatch):
    """The test settings run django-q2 inline (Q_SYNC); here enqueueing goes to the real broker, the ORM
    one or Redis (config/settings.py picks Redis when Q_REDIS_URL is set), shared with the qclusters."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    if request.param == "orm":
        yield Broker("orm", {})
        return
    _redis_or_skip()
    # A queue of its own: other test runs may share this Redis. The name is also the signing salt.
    name = f"synchub-chaos-{uuid.uuid4().hex[:10]}"
    url = f"{REDIS_URL}?socket_connect_timeout=5&socket_timeout=10"
    for attr, value in (("ORM", None), ("REDIS", url), ("PREFIX", name), ("CLUSTER_NAME", name)):
        monkeypatch.setattr(Conf, attr, value)
    broker = Broker("redis", {"Q_REDIS_URL": url, "Q_CLUSTER_NAME": name})
    yield broker
    from django_q.brokers import get_broker

    get_broker().delete_queue()


class Clusters:
    """qcluster processes on the pytest database, each in its own process group, recording what they do."""

    def __init__(self, tmp_path, extra_env: dict[str, str]):
        self.broker_env: dict[str, str] = {}
        self.tmp_path = tmp_path
        self.record = tmp_path / "record"
        self.record.mkdir()
        self.extra_env = extra_env
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, *names: str, lease_seconds: int = 120) -> None:
        for name in names:
            env = {
                **os.environ,
                **self.extra_env,
                **self.broker_env,
                "DJANGO_SETTINGS_MODULE": "tests.chaos.qcluster_settings",
                "DATABASE_URL": database_url(),
                "CACHE_URL": "locmemcache://",  # the test database has no cache table; only Stat uses it
                "Q_SYNC": "false",
                "Q_WORKERS": "2",
                "Q_POLL": "0.1",
                "Q_TIMEOUT": "30",
                "Q_RETRY": "60",  # > timeout: a live task is never re-delivered (stack-notes §2)
                "SYNC_RETRY_BASE_SECONDS": "0",
                "SYNC_LEASE_SECONDS": str(lease_seconds),
                "CHAOS_RECORD_DIR": str(self.record),
                "CHAOS_CLUSTER": name,
                "CHAOS_BATCH_PAUSE": "0.02",
                "CHAOS_PARENT_PID": str(os.getpid()),  # the cluster kills itself if this process dies
                "CHAOS_MAX_SECONDS": "120",
            }
            with open(self.tmp_path / f"{name}.log", "w") as log:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "manage.py", "qcluster"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: workers, pusher, monitor die with it
                )
        # Every cluster up before any task exists, so none gets a head start on the broker.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(len(self.read("up").get(n, [])) < 2 for n in names):
            assert all(self.procs[n].poll() is None for n in names), self.logs()
            time.sleep(0.05)
        assert all(len(self.read("up").get(n, [])) == 2 for n in names), self.logs()
        time.sleep(0.3)  # the pusher starts right after the workers

    def kill(self, name: str) -> None:
        try:
            os.killpg(self.procs[name].pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.procs[name].wait(timeout=10)

    def read(self, suffix: str) -> dict[str, list[str]]:
        """cluster name -> the lines its processes recorded."""
        out: dict[str, list[str]] = collections.defaultdict(list)
        for path in self.record.glob(f"*.{suffix}"):
            out[path.name.split("-", 1)[0]].extend(path.read_text().splitlines())
        return out

    def logs(self) -> dict[str, str]:
        return {p.name: p.read_text()[-3000:] for p in self.tmp_path.glob("*.log")}


@pytest.fixture
def clusters(transactional_db, tmp_path, ls_sandbox, broker_not_inline):
    """Start qclusters with ``clusters.start(...)``, on the test's broker; teardown kills every one by
    process group."""
    made = Clusters(tmp_path, ls_sandbox.env)
    made.broker_env = broker_not_inline.env
    yield made
    for name in list(made.procs):
        made.kill(name)


def wait_settled(queues, *, broker: Broker | None = None, tasks: int = 0) -> None:
    """Until the queues are finished (and, given a broker, it is empty and ``tasks`` results are saved)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        settled = not SyncQueue.objects.filter(pk__in=[q.pk for q in queues], is_active=True).exists()
        if settled and (broker is None or broker.empty()) and Task.objects.count() >= tasks:
            return
        time.sleep(0.1)


def test_two_qclusters_process_every_line_exactly_once(
    clusters, broker_not_inline, org, make_connection, chaos_kind, upstream, ls_sandbox
):
    clusters.start("a", "b")
    woo = [
        make_connection(
            org,
            kind=chaos_kind,
            name=f"woo {n}",
            base_url=base_url(upstream.root, n=n, delay_ms=20),
            config={"batch_size": 25},
        )
        for n in WOO_SIZES
    ]
    g = ls_sandbox.grant()
    ls = make_connection(
        org,
        kind="lightspeed",
        base_url=f"{ls_sandbox.base}/api/2.0/",
        external_account_id=ls_sandbox.domain_prefix,
        credentials={"access_token": g.access_token, "refresh_token": g.refresh_token, "expires_at": 1},
        config={"domain_prefix": ls_sandbox.domain_prefix, "auth": "oauth", "batch_size": 25},
    )
    runs = [(conn, "customers") for conn in woo] + [(ls, "customers"), (ls, "products")]
    queues = [services.sync_start(connection=conn, resource=resource).queue for conn, resource in runs]  # enqueued
    # Re-deliveries of the same work once the runs are under way: they join the queues being fetched
    # and claim lines alongside the first workers (possibly in the other cluster).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not SyncQueue.objects.filter(pk=queues[0].pk, pages_fetched__gte=1).exists():
        time.sleep(0.02)
    for queue in queues:
        services.enqueue_queue(queue.pk)
    enqueued = 2 * len(queues)

    wait_settled(queues, broker=broker_not_inline, tasks=enqueued)
    logs = clusters.logs()
    assert not SyncQueue.objects.filter(pk__in=[q.pk for q in queues], is_active=True).exists(), logs
    assert broker_not_inline.empty(), "every task acknowledged"

    # django-q2: each task delivered to one cluster, once, and succeeded.
    task_runs = clusters.read("runs")
    assert sorted(int(q) for lines in task_runs.values() for q in lines) == sorted([q.pk for q in queues] * 2)
    assert set(task_runs) == {"a", "b"}, (
        f"both clusters must have taken tasks: { {k: len(v) for k, v in task_runs.items()} }"
    )
    assert Task.objects.count() == Success.objects.count() == enqueued, logs

    # The engine: every line of every queue upserted exactly once, across every process of both clusters.
    upserts = clusters.read("upserts")
    counted = collections.Counter(line for lines in upserts.values() for line in lines)
    expected = {f"{qid} {ext}" for qid, ext in SyncQueueLine.objects.values_list("queue_id", "external_id")}
    assert len(expected) == sum(WOO_SIZES) + LS_CUSTOMERS + LS_PRODUCTS
    assert set(counted) == expected and max(counted.values()) == 1, "each line upserted exactly once"
    assert not SyncQueueLine.objects.exclude(attempts=1).exists()

    for queue in queues:
        queue.refresh_from_db()
        assert (queue.state, queue.done_count, queue.failed_count) == (QueueState.DONE, queue.total_count, 0)
        status = SyncStatus.objects.get(connection=queue.connection_id, resource=queue.resource)
        assert status.state == StatusState.SUCCESS and status.last_queue_id == queue.pk
    for conn, n in zip(woo, WOO_SIZES, strict=True):
        assert stored(conn) == truth(n)
    for model, collection, field in ((Customer, "customers", "email"), (Product, "products", "sku")):
        rows = list(model.objects.filter(connection=ls).values_list("external_id", field))
        assert sorted(rows) == sorted((r["id"], r[field]) for r in ls_sandbox.live(collection))
    assert ls_sandbox.refresh_calls() == 1, "one refresh for the two resources, whichever clusters ran them"
    ls.refresh_from_db()
    assert ls.credentials["refresh_token"] in ls_sandbox.refresh_tokens and not ls.needs_reauth


def test_a_qcluster_killed_mid_run_the_other_finishes_the_work(
    clusters, broker_not_inline, org, make_connection, chaos_kind, upstream
):
    """A host dies: cluster A is SIGKILLed (its whole process group) in the middle of three runs. Cluster B
    runs the product's reaper (``sync.tasks.reap``, as its schedule would) a lease later, which returns
    A's leased lines and resumes the queues; B finishes them. Nothing A committed is written again."""
    lease = 4  # short, so the test waits one lease instead of two minutes
    sizes = (900, 600, 500)
    conns = [
        make_connection(
            org,
            kind=chaos_kind,
            name=f"woo {n}",
            base_url=base_url(upstream.root, n=n, delay_ms=40),
            # The claimed path: leases, the reaper and a batch held by the dead cluster are what this
            # test is about (the fetcher's own page writes die with their transaction; test_worker_killed
            # kills those).
            config={"batch_size": 25, "process_on_fetch": False},
        )
        for n in sizes
    ]
    clusters.start("a", lease_seconds=lease)
    queues = [services.sync_start(connection=conn, resource="customers").queue for conn in conns]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(clusters.read("upserts").get("a", [])) < 300:
        time.sleep(0.02)
    clusters.kill("a")
    by_a = clusters.read("upserts").get("a", [])
    assert len(by_a) >= 300, clusters.logs()
    crashed = {
        f"{qid} {ext}"
        for qid, ext in SyncQueueLine.objects.filter(state=LineState.PROCESSING).values_list("queue_id", "external_id")
    }
    committed = {
        f"{qid} {ext}"
        for qid, ext in SyncQueueLine.objects.filter(state=LineState.DONE).values_list("queue_id", "external_id")
    }
    assert SyncQueue.objects.filter(pk__in=[q.pk for q in queues], is_active=True).count() == len(queues)
    assert committed and set(by_a) >= committed, "A recorded what it committed"

    clusters.start("b", lease_seconds=lease)
    # The reaper sees A's work as lost once every lease A took has run out (a lease is up to 1 s longer
    # than SYNC_LEASE_SECONDS) and A's queues have been idle a lease period.
    active = SyncQueue.objects.filter(pk__in=[q.pk for q in queues])
    ends = [
        *active.exclude(fetch_lease_until=None).values_list("fetch_lease_until", flat=True),
        *(t + dt.timedelta(seconds=lease) for t in active.values_list("updated_at", flat=True)),
        *SyncQueueLine.objects.filter(state=LineState.PROCESSING).values_list("lease_until", flat=True),
    ]
    time.sleep(max((max(ends) - dt.datetime.now(dt.UTC)).total_seconds() + 0.2, 0))
    async_task("sync.tasks.reap")  # what the reap schedule does, executed by cluster B
    wait_settled(queues)

    by_b = clusters.read("upserts").get("b", [])
    assert by_b, clusters.logs()
    counted_b = collections.Counter(by_b)
    assert max(counted_b.values()) == 1, "B upserted each line once"
    assert set(by_b) & committed == set(), "nothing A committed was written again"
    expected = {f"{qid} {ext}" for qid, ext in SyncQueueLine.objects.values_list("queue_id", "external_id")}
    assert len(expected) == sum(sizes), clusters.logs()
    assert committed | set(by_b) == expected, "every line committed once: by A before the kill or by B after"
    assert set(by_a) - committed <= crashed, "what A wrote and did not commit was a batch it still held"
    assert crashed <= set(by_b), "B redid the lines A held when it died"
    attempts = dict(
        (f"{qid} {ext}", a) for qid, ext, a in SyncQueueLine.objects.values_list("queue_id", "external_id", "attempts")
    )
    assert {k for k, a in attempts.items() if a == 2} == crashed, "the crash counted once, on A's leased lines"
    assert max(attempts.values()) <= 2
    for queue, conn, n in zip(queues, conns, sizes, strict=True):
        queue.refresh_from_db()
        assert (queue.state, queue.done_count, queue.total_count) == (QueueState.DONE, n, n), queue.last_error
        assert stored(conn) == truth(n)
        status = SyncStatus.objects.get(connection=conn, resource="customers")
        assert status.state == StatusState.SUCCESS and status.records_synced == n
    assert "sync.tasks.reap" in set(Task.objects.values_list("func", flat=True))
