"""Two worker processes on one queue, and a database connection dropped in the middle of a batch."""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.db import connection as db

from sync import services
from sync.engine import QueueRunner, run_queue
from sync.models import LineState, QueueState, SyncQueueLine
from tests.chaos.conftest import database_url, start_worker, stored, truth

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_workers_process_every_line_exactly_once(chaos_conn, upstream, fast_retries, tmp_path):
    n = 1000
    # Claimed batches only: with process_on_fetch the fetcher writes every page itself and the second
    # worker (correctly) finds nothing to claim.
    conn = chaos_conn(n, delay_ms=30, batch_size=20, process_on_fetch=False)
    queue = services.sync_start(connection=conn, resource="customers", enqueue=False).queue
    logs = [tmp_path / f"upserts-{i}.txt" for i in range(2)]
    # A worker that finds nothing to claim leaves at once, so each one works the queue again until it
    # is settled, as re-delivered tasks would: both really work it at the same time.
    env = {"CHAOS_BATCH_PAUSE": "0.03", "CHAOS_UNTIL_SETTLED": "1"}
    procs = [start_worker(queue.pk, CHAOS_RECORD=str(log), **env) for log in logs]
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err[-2000:]

    upserts = [log.read_text().split() if log.exists() else [] for log in logs]
    assert all(upserts), f"both workers must have worked the queue: {[len(u) for u in upserts]}"
    assert sorted(upserts[0] + upserts[1], key=int) == sorted(truth(n), key=int), "each line upserted exactly once"
    queue.refresh_from_db()
    assert (queue.state, queue.done_count, queue.total_count) == (QueueState.DONE, n, n)
    assert not SyncQueueLine.objects.filter(queue=queue).exclude(attempts=1).exists()
    assert stored(conn) == truth(n)
    assert upstream.hits and max(upstream.hits.values()) == 1, "one fetcher only (the fetch lease)"


def test_connection_dropped_mid_batch_rolls_back_whole_batch_and_retries(
    chaos_conn, upstream, fast_retries, monkeypatch, jump_past_leases
):
    n, batch = 300, 50
    conn = chaos_conn(n, batch_size=batch, process_on_fetch=False)  # the claimed path; inline is the next test
    queue = services.sync_start(connection=conn, resource="customers", enqueue=False).queue
    seen: dict = {}
    original = QueueRunner._write
    calls = {"n": 0}

    def write_then_drop(self, upserts, deletes, now):
        original(self, upserts, deletes, now)
        calls["n"] += 1
        if calls["n"] != 3:
            return
        with db.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
        with psycopg.connect(database_url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            # Wait until the server has really ended that backend (and so rolled its transaction back).
            for _ in range(500):
                if not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
                    break
                threading.Event().wait(0.01)
            seen["rows"] = admin.execute(
                "SELECT count(*) FROM customers_customer WHERE connection_id = %s", (conn.pk,)
            ).fetchone()[0]
            seen["batch"] = [line.external_id for line, _ in upserts]

    monkeypatch.setattr(QueueRunner, "_write", write_then_drop)
    state = run_queue(queue.pk)  # must not raise, whatever happened to its connection
    db.close()  # as a worker would between tasks: a fresh connection for what follows

    assert seen["rows"] == 2 * batch, "the dropped batch left nothing behind (rolled back whole)"
    queue.refresh_from_db()
    if queue.is_active:  # the worker gave up on its lines: the reaper returns them a lease later
        jump_past_leases()
        services.lines_reap()
        state = run_queue(queue.pk) or state
        queue.refresh_from_db()
    assert (queue.state, queue.is_active) == (QueueState.DONE, False), (state, queue.state, queue.last_error)
    assert stored(conn) == truth(n), "the batch was retried: every record present exactly once"
    lines = SyncQueueLine.objects.filter(queue=queue, external_id__in=seen["batch"])
    assert lines.count() == batch and all(line.state == LineState.DONE for line in lines)
    assert all(line.attempts <= 2 for line in lines)


@pytest.mark.parametrize(
    ("inline", "store"), [(True, "lines_insert"), (False, "lines_add")], ids=["processed-on-fetch", "draft-lines"]
)
def test_connection_dropped_while_storing_a_page_fails_safe_and_retry_completes(
    inline, store, chaos_conn, upstream, fast_retries, monkeypatch
):
    from sync import engine

    n = 300
    # One page a group (the default groups would take all three pages in one transaction): page 2's own.
    conn = chaos_conn(n, process_on_fetch=inline, fetch_group_records=1)
    services.status_upsert(connection=conn, resource="customers", cursor="2000-01-01T00:00:00Z")
    queue = services.sync_start(connection=conn, resource="customers", enqueue=False).queue
    original = getattr(engine, store)  # what writes a page's lines on this path
    calls = {"n": 0}

    def add_then_drop(*args, **kw):
        added = original(*args, **kw)
        calls["n"] += 1
        if calls["n"] == 2:
            with db.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                pid = cur.fetchone()[0]
            with psycopg.connect(database_url(), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return added

    monkeypatch.setattr(engine, store, add_then_drop)
    state = run_queue(queue.pk)
    db.close()
    queue.refresh_from_db()
    assert not queue.is_active and queue.state == QueueState.PARTIAL, (state, queue.state, queue.last_error)
    returned = state
    assert queue.total_count == 100, "page 2's lines rolled back whole with its transaction"
    assert queue.fetch_error and queue.fetch_token == 2, "fetch progress stays at the last committed page"
    from sync.models import SyncStatus

    assert SyncStatus.objects.get(connection=conn, resource="customers").cursor == "2000-01-01T00:00:00Z"

    monkeypatch.setattr(engine, store, original)
    services.queue_retry(queue=queue, enqueue=False)
    assert run_queue(queue.pk) == QueueState.DONE
    assert stored(conn) == truth(n)
    assert upstream.hits[1] == 1, "the retry resumed after the committed page"
    assert returned == QueueState.PARTIAL, "run_queue returns the state it settled"
