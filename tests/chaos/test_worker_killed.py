"""SIGKILL a real worker process at different points of a sync; recovery (the reaper a lease later, then
the queue worked again) must leave the domain table equal to the upstream: nothing lost, nothing doubled,
the crash counted as an attempt, the queue and SyncStatus right."""

from __future__ import annotations

import signal

import pytest

from sync import services
from sync.engine import run_queue
from sync.models import LineState, QueueState, StatusState, SyncActivity, SyncQueueLine, SyncStatus
from tests.chaos.conftest import start_worker, stored, truth

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

N = 430  # 5 pages of 100 (the last short), 9 batches of 50

# (kill point, n-th time, fetch threads, process on fetch, lines that are leased by the dead worker).
# With process_on_fetch (the default) the fetcher writes each page's rows and done lines in the page's
# transaction; without it every record goes through a draft line and a claimed batch of 50. Both paths
# are killed at their own points. Pages are stored one per transaction here (fetch_group_records=1) so
# that "the n-th page" is exact; the last point keeps the default grouping of ready pages.
POINTS = [
    pytest.param("fetch", 3, 1, True, 0, id="mid-fetch"),
    pytest.param("fetch", 4, 4, True, 0, id="mid-fetch-concurrent"),
    pytest.param("write", 2, 1, True, 0, id="mid-page-write-uncommitted"),
    pytest.param("stored", 3, 1, True, 0, id="page-written-and-committed"),
    pytest.param("stored", 2, 1, False, 0, id="page-committed-lines-unprocessed"),
    pytest.param("claimed", 2, 1, False, 50, id="batch-claimed"),
    pytest.param("write", 3, 1, False, 50, id="mid-batch-uncommitted"),
    pytest.param("committed", 4, 1, False, 0, id="batch-committed"),
    pytest.param("finalize", 1, 1, True, 0, id="all-done-before-status-write"),
    pytest.param("status", 1, 1, True, 0, id="during-status-write"),
    pytest.param("stored", 1, 4, True, 0, id="first-page-group-committed"),
]


@pytest.mark.parametrize(("point", "nth", "threads", "inline", "leased"), POINTS)
def test_sigkill_then_recover(
    point, nth, threads, inline, leased, chaos_conn, upstream, fast_retries, jump_past_leases, request
):
    grouped = request.node.callspec.id == "first-page-group-committed"
    conn = chaos_conn(N, fetch_concurrency=threads, process_on_fetch=inline, fetch_group_records=None if grouped else 1)
    queue = services.sync_start(connection=conn, resource="customers", enqueue=False).queue

    proc = start_worker(queue.pk, CHAOS_KILL_AT=f"{point}:{nth}")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, out, err[-2000:])

    queue.refresh_from_db()
    assert queue.is_active, "a killed run must not look settled"
    assert SyncQueueLine.objects.filter(queue=queue, state=LineState.PROCESSING).count() == leased
    resume_at = int(queue.fetch_token or 1)  # the page after the last one whose lines were committed
    rows_before = len(stored(conn))
    # (A first group may hold every page when the upstream is faster than the worker.)
    assert rows_before < N or point in ("finalize", "status") or grouped

    jump_past_leases()
    reaped = services.lines_reap()  # returns leases to draft and resumes the queue (inline django-q2)
    assert reaped["returned"] == leased and reaped["failed"] == 0
    assert run_queue(queue.pk) in (QueueState.DONE, None)  # re-delivery of a settled queue is harmless

    queue.refresh_from_db()
    assert (queue.state, queue.is_active) == (QueueState.DONE, False), (queue.state, queue.last_error)
    assert queue.done_count == queue.total_count == N
    assert stored(conn) == truth(N)
    attempts = dict(SyncQueueLine.objects.filter(queue=queue).values_list("external_id", "attempts"))
    assert len(attempts) == N
    assert sum(1 for a in attempts.values() if a == 2) == leased, "a crash counts as one attempt, once"
    assert max(attempts.values()) <= 2
    status = SyncStatus.objects.get(connection=conn, resource="customers")
    assert status.state == StatusState.SUCCESS and status.last_queue_id == queue.pk
    assert status.records_synced == N and status.last_error == ""
    assert status.cursor == max(f"{customer_mod(i)}Z" for i in range(1, N + 1))
    if leased:
        assert SyncActivity.objects.filter(queue=queue, event="lines.reaped").exists()
    if not queue.fetch_token and point in ("finalize", "status", "committed"):
        return
    assert all(upstream.hits[p] == 1 for p in range(1, resume_at)), "stored pages must not be fetched again"
    assert all(upstream.hits.get(p, 0) >= 1 for p in range(1, 6)), "every page fetched"


def customer_mod(i: int) -> str:
    from bench.upstream import customer

    return customer(i)["date_modified_gmt"]
