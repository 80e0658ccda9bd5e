"""ops.broker.SkipLockedORM: django-q2's ORM broker whose dequeue is one UPDATE ... WHERE id IN (SELECT ... FOR
UPDATE SKIP LOCKED) RETURNING on PostgreSQL, so that clusters never reach for the same task."""

import datetime as dt
import threading

import psycopg
import pytest
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ

from ops.broker import SkipLockedORM
from tests.chaos.conftest import database_url


@pytest.fixture
def broker(monkeypatch):
    monkeypatch.setattr(Conf, "ORM", "default")
    monkeypatch.setattr(Conf, "BULK", 1)
    monkeypatch.setattr(Conf, "POLL", 0.01)
    monkeypatch.setattr(Conf, "RETRY", 60)
    b = SkipLockedORM(list_key="fleet-test")
    b.purge_queue()
    return b


@pytest.mark.django_db
def test_dequeue_takes_the_oldest_leases_it_and_acknowledging_deletes(broker):
    ids = [broker.enqueue(f"task-{i}") for i in range(3)]
    OrmQ.objects.create(key="another-cluster-name", payload="not ours", lock=timezone.now())
    got = broker.dequeue()
    assert got == [(ids[0], "task-0")]  # oldest first, one at a time (bulk 1)
    leased = OrmQ.objects.get(pk=ids[0]).lock
    assert leased > timezone.now() + dt.timedelta(seconds=50)  # leased for `retry`: not delivered twice meanwhile
    assert broker.dequeue() == [(ids[1], "task-1")]
    broker.acknowledge(ids[0])
    assert not OrmQ.objects.filter(pk=ids[0]).exists()
    assert broker.dequeue() == [(ids[2], "task-2")]
    assert broker.dequeue() is None  # empty (the other key's row is not ours)
    OrmQ.objects.filter(pk=ids[1]).update(lock=timezone.now() - dt.timedelta(seconds=1))  # its lease ran out
    assert broker.dequeue() == [(ids[1], "task-1")]  # delivered again, as django-q2's broker does


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_task_locked_by_another_cluster_is_skipped_not_waited_for(broker):
    from django.db import connection

    first, second = broker.enqueue("first"), broker.enqueue("second")
    with connection.cursor() as cur:
        cur.execute("SET lock_timeout = '5s'")  # without SKIP LOCKED the dequeue would wait: fail, do not hang
    with psycopg.connect(database_url()) as other:  # another cluster in the middle of taking "first"
        other.execute("SELECT id FROM django_q_ormq WHERE id = %s FOR UPDATE", [first])
        assert broker.dequeue() == [(second, "second")]
        other.rollback()
    assert broker.dequeue() == [(first, "first")]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_clusters_dequeueing_at_once_each_get_different_tasks(broker, monkeypatch):
    monkeypatch.setattr(Conf, "BULK", 3)
    n = 120
    for i in range(n):
        broker.enqueue(f"t{i}")
    taken: list[list[int]] = [[], [], []]
    barrier = threading.Barrier(3)

    def cluster(mine: list[int]):
        from django.db import connection

        try:
            b = SkipLockedORM(list_key="fleet-test")
            barrier.wait()
            while tasks := b.dequeue():
                mine.extend(pk for pk, _ in tasks)
        finally:
            connection.close()

    threads = [threading.Thread(target=cluster, args=(mine,)) for mine in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [pk for mine in taken for pk in mine]
    assert len(everything) == n and len(set(everything)) == n  # every task once, none twice


@pytest.mark.django_db
def test_select_keeps_django_q2s_choice_of_redis_when_the_orm_is_off(monkeypatch):
    from django_q.brokers import get_broker

    monkeypatch.setattr(Conf, "BROKER_CLASS", "ops.broker.select")
    assert type(get_broker()) is SkipLockedORM
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", "redis://127.0.0.1:9/0?socket_connect_timeout=1")
    assert type(get_broker()).__name__ == "Redis"
