"""Concurrency on PostgreSQL: real threads, each with its own database connection and transactions."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from customers.models import Customer
from sync import engine, services
from sync.models import LineState, QueueState, SyncQueue, SyncQueueLine
from tests import fakes
from tests.sync.conftest import assert_counters_match

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_in_threads(n: int, target) -> list:
    """Start n threads at the same moment; each closes its DB connection; re-raise the first error."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list[BaseException] = []

    def wrapper(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = target(i)
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapper, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    if errors:
        raise errors[0]
    return results


def test_two_workers_on_one_queue_process_every_line_exactly_once(fake_conn, fake_kind, monkeypatch):
    fake_kind.__init__(150)
    mapped: Counter = Counter()
    by_thread: Counter = Counter()
    lock = threading.Lock()
    resource = fakes.connector.resources["customers"]
    original_map = resource.map

    def counting_map(record):
        with lock:
            mapped[str(record["id"])] += 1
            by_thread[threading.current_thread().name] += 1
        return original_map(record)

    monkeypatch.setattr(resource, "map", counting_map)
    queue = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue

    # Both workers run the whole queue: one wins the fetch lease, the other works lines as they land.
    states = run_in_threads(2, lambda i: engine.run_queue(queue.pk, batch_size=7))

    queue.refresh_from_db()
    assert queue.state == QueueState.DONE and not queue.is_active
    assert QueueState.DONE in states
    assert len(mapped) == 150 and set(mapped.values()) == {1}, "a line was processed twice"
    assert set(SyncQueueLine.objects.filter(queue=queue).values_list("attempts", flat=True)) == {1}
    assert SyncQueueLine.objects.filter(queue=queue, state=LineState.DONE).count() == 150
    assert Customer.objects.filter(connection=fake_conn).count() == 150
    assert_counters_match(queue)


def test_two_workers_claiming_concurrently_never_share_a_line(claimed_conn, fake_kind):
    fake_kind.__init__(300)
    queue = services.sync_start(connection=claimed_conn, resource="customers", enqueue=False).queue
    fetcher = engine.QueueRunner(queue, batch_size=10**6)
    fetcher.client = fetcher.connector.client(claimed_conn)
    monkey_claim = fetcher.claim
    fetcher.claim = lambda limit: []  # fetch only; leave every line draft
    fetcher.fetch()
    fetcher.claim = monkey_claim
    assert SyncQueueLine.objects.filter(queue=queue, state=LineState.DRAFT).count() == 300

    def claim_all(i: int) -> list[int]:
        runner = engine.QueueRunner(SyncQueue.objects.get(pk=queue.pk))
        got: list[int] = []
        while batch := runner.claim(9):
            got.extend(line.pk for line in batch)
        return got

    a, b = run_in_threads(2, claim_all)
    assert not set(a) & set(b)
    assert len(a) + len(b) == 300
    assert_counters_match(queue)


def test_two_triggers_at_once_start_one_run(fake_conn, fake_kind):
    fake_kind.__init__(3)
    for round_no in range(3):
        results = run_in_threads(
            2, lambda i: services.sync_start(connection=fake_conn, resource="customers", enqueue=False)
        )
        assert results[0].queue.pk == results[1].queue.pk, f"round {round_no}: two runs were created"
        assert sorted(r.reason for r in results) == ["created", "running"]
        assert SyncQueue.objects.filter(connection=fake_conn, is_active=True).count() == 1
        services.queue_cancel(queue=results[0].queue)


def test_webhook_deliveries_while_a_worker_processes(fake_conn, fake_kind):
    """Pushes that race with processing: nothing deadlocks, counters hold, the newest payload wins."""

    def push(round_no: int) -> None:
        records = [fakes.FakeUpstream.make(i, first_name=f"v{round_no}") for i in range(1, 31)]
        services.sync_enqueue_records(connection=fake_conn, resource="customers", records=records, enqueue=False)

    push(0)
    queue = SyncQueue.objects.get(lane="webhook")

    def role(i: int):
        if i == 0:
            for round_no in range(1, 6):
                push(round_no)
            return None
        states = []
        for _ in range(6):
            states.append(engine.run_queue(queue.pk, batch_size=4))
        return states

    run_in_threads(2, role)
    # Whatever raced, one more pass settles it; the webhook queue may have closed and a new one opened.
    for q in SyncQueue.objects.filter(lane="webhook", is_active=True):
        engine.run_queue(q.pk)
    for q in SyncQueue.objects.filter(lane="webhook"):
        q.refresh_from_db()
        assert q.state == QueueState.DONE, (q.pk, q.state)
        assert_counters_match(q)
    names = set(Customer.objects.filter(connection=fake_conn).values_list("first_name", flat=True))
    assert names == {"v5"} and Customer.objects.filter(connection=fake_conn).count() == 30
