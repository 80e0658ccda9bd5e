"""Two real ``manage.py qcluster`` processes (django-q2, ORM broker) on the pytest PostgreSQL database,
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
import os
import signal
import subprocess
import sys
import time

import pytest
from django_q.models import OrmQ, Success, Task

from bench.upstream import base_url
from commerce.models import Product
from connectors.lightspeed.sandbox import LightspeedSandbox
from connectors.sandbox.server import serve
from customers.models import Customer
from sync import services
from sync.models import QueueState, StatusState, SyncQueue, SyncQueueLine, SyncStatus
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


@pytest.fixture
def broker_not_inline(monkeypatch):
    """The test settings run django-q2 inline (Q_SYNC); here enqueueing must go to the ORM broker."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)


@pytest.fixture
def qclusters(transactional_db, tmp_path, ls_sandbox):
    """Start two qcluster processes, each in its own process group; kill both groups at teardown."""
    record = tmp_path / "record"
    record.mkdir()
    procs: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        env = {
            **os.environ,
            **ls_sandbox.env,
            "DJANGO_SETTINGS_MODULE": "tests.chaos.qcluster_settings",
            "DATABASE_URL": database_url(),
            "CACHE_URL": "locmemcache://",  # the test database has no cache table; Stat is all that uses it
            "Q_SYNC": "false",
            "Q_WORKERS": "2",
            "Q_POLL": "0.1",
            "Q_TIMEOUT": "30",
            "Q_RETRY": "60",  # > timeout: a live task is never re-delivered (stack-notes §2)
            "SYNC_RETRY_BASE_SECONDS": "0",
            "CHAOS_RECORD_DIR": str(record),
            "CHAOS_CLUSTER": name,
            "CHAOS_BATCH_PAUSE": "0.02",
        }
        with open(tmp_path / f"{name}.log", "w") as log:
            proc = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: teardown kills workers, pusher, monitor too
            )
        procs.append(proc)
        return proc

    start("a")
    start("b")
    # Both clusters up before any task exists, so neither gets a head start on the broker.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and {k: len(v) for k, v in _read(record, "up").items()} != {"a": 2, "b": 2}:
        assert all(p.poll() is None for p in procs), [(tmp_path / f"{n}.log").read_text()[-2000:] for n in "ab"]
        time.sleep(0.05)
    time.sleep(0.3)  # the pusher starts right after the workers
    yield record
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def _read(record, suffix: str) -> dict[str, list[str]]:
    """cluster name -> the lines its processes recorded."""
    out: dict[str, list[str]] = collections.defaultdict(list)
    for path in record.glob(f"*.{suffix}"):
        out[path.name.split("-", 1)[0]].extend(path.read_text().splitlines())
    return out


def test_two_qclusters_process_every_line_exactly_once(
    qclusters, broker_not_inline, org, make_connection, chaos_kind, upstream, ls_sandbox, tmp_path
):
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

    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        settled = not SyncQueue.objects.filter(pk__in=[q.pk for q in queues], is_active=True).exists()
        if settled and not OrmQ.objects.exists() and Task.objects.count() >= enqueued:
            break
        time.sleep(0.1)
    logs = {p.name: p.read_text()[-3000:] for p in tmp_path.glob("*.log")}
    assert not SyncQueue.objects.filter(pk__in=[q.pk for q in queues], is_active=True).exists(), logs
    assert not OrmQ.objects.exists(), "every task acknowledged"

    # django-q2: each task delivered to one cluster, once, and succeeded.
    task_runs = _read(qclusters, "runs")
    assert sorted(int(q) for lines in task_runs.values() for q in lines) == sorted([q.pk for q in queues] * 2)
    assert set(task_runs) == {"a", "b"}, (
        f"both clusters must have taken tasks: { {k: len(v) for k, v in task_runs.items()} }"
    )
    assert Task.objects.count() == Success.objects.count() == enqueued, logs

    # The engine: every line of every queue upserted exactly once, across every process of both clusters.
    upserts = _read(qclusters, "upserts")
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
