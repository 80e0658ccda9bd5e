"""The scheduler tick under real concurrency (PostgreSQL): each chunk is one UPDATE ... WHERE id IN (SELECT ... FOR
UPDATE SKIP LOCKED) RETURNING. A unit locked elsewhere is left to the next tick, and two ticks at once enqueue
every due unit exactly once."""

import datetime as dt
import threading

import psycopg
import pytest
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from sync import scheduler
from sync.models import RunSchedule
from tests.chaos.conftest import database_url

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
KIND = "tiendanube"


@pytest.fixture
def due_stores(org, make_connection, fake_clock, monkeypatch):
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)  # the ORM broker for real: the tick's tasks land in OrmQ

    def make(n):
        conns = []
        for i in range(n):
            conn = make_connection(org, kind=KIND, external_account_id=str(6000 + i), name=f"store {6000 + i}")
            RunSchedule.objects.create(
                organization=org,
                connection=conn,
                tier="high",
                next_sync_at=fake_clock.now() - dt.timedelta(minutes=1, seconds=i),
                last_success_at=fake_clock.now(),
            )
            conns.append(conn)
        return conns

    return make


def enqueued_connection_ids() -> list[int]:
    return sorted(SignedPackage.loads(q.payload)["args"][0] for q in OrmQ.objects.all())


def test_a_unit_locked_elsewhere_is_skipped_then_enqueued_by_the_next_tick(due_stores):
    from django.db import connection

    conns = due_stores(5)
    locked = conns[:2]
    with connection.cursor() as cur:
        cur.execute("SET lock_timeout = '5s'")  # without SKIP LOCKED the tick would wait: fail, do not hang
    with psycopg.connect(database_url()) as other:  # another session writing these units' rows
        other.execute(
            "SELECT id FROM sync_runschedule WHERE connection_id = ANY(%s) FOR UPDATE", [[c.pk for c in locked]]
        )
        report = scheduler.tick(KIND)
        assert report.enqueued == 3
        assert enqueued_connection_ids() == sorted(c.pk for c in conns[2:])
        assert not RunSchedule.objects.filter(connection__in=locked, queued_at__isnull=False).exists()
        other.rollback()
    assert scheduler.tick(KIND).enqueued == 2
    assert enqueued_connection_ids() == sorted(c.pk for c in conns)


def test_two_ticks_at_once_enqueue_every_due_unit_exactly_once(due_stores, settings):
    settings.SYNC_TICK_CHUNK = 3  # many short transactions, so the two ticks interleave
    conns = due_stores(40)
    reports, barrier = [], threading.Barrier(2)

    def run():
        from django.db import connection

        try:
            barrier.wait()
            reports.append(scheduler.tick(KIND))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reports) == 2 and sum(r.enqueued for r in reports) == 40
    assert enqueued_connection_ids() == sorted(c.pk for c in conns)  # each once: no twin task
    assert RunSchedule.objects.filter(connection__in=conns, queued_at__isnull=True).count() == 0
