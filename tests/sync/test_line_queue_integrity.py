"""The lines' key to their queue has no database constraint (sync.models.SyncQueueLine): what keeps every line
with an existing queue instead. Runs on the database under test (PostgreSQL in CI's first leg, SQLite in its
second)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection as db_connection
from django.db import transaction
from django.db.models.deletion import Collector

from core import clock
from sync.models import LineState, SyncQueue, SyncQueueLine
from sync.services import lines_reap, queues_purge
from sync.services.locks import lock_queue
from sync.services.state import NewLine, lines_insert

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue(org, make_connection):
    conn = make_connection(org, kind="woocommerce", base_url="http://127.0.0.1:9/")
    return SyncQueue.objects.create(organization=org, connection=conn, resource="customers")


def _insert_lines(queue_id: int, ids: list[str]) -> None:
    """The lines' insertion path: the queue's lock, then the lines, in one transaction."""
    with transaction.atomic():
        lock_queue(queue_id)
        lines_insert([NewLine(queue_id=queue_id, external_id=i, payload={}, updated_at=clock.now()) for i in ids])


def test_the_queue_lock_refuses_a_queue_that_is_gone_so_no_line_is_inserted_for_it(queue):
    gone = queue.pk
    SyncQueue.objects.filter(pk=gone).delete()
    with pytest.raises(SyncQueue.DoesNotExist), transaction.atomic():
        lock_queue(gone)
    with pytest.raises(SyncQueue.DoesNotExist):
        _insert_lines(gone, ["a"])
    assert not SyncQueueLine.objects.filter(queue_id=gone).exists()


def test_the_queue_lock_with_a_value_refuses_a_queue_that_is_gone(queue):
    if db_connection.vendor != "postgresql":
        pytest.skip("the value rides on the lock statement on PostgreSQL only")
    SyncQueue.objects.filter(pk=queue.pk).delete()
    with pytest.raises(SyncQueue.DoesNotExist), transaction.atomic():
        lock_queue(queue.pk, value=("SELECT 1", []))


def test_lines_committed_after_the_cascade_read_them_go_with_the_deleted_connection(queue):
    """Connection.delete() reads the queue's lines, then deletes them by key and the queue in its
    transaction: lines a worker committed in between used to be refused by the foreign key (the delete
    failed); now they are deleted with the queue."""
    _insert_lines(queue.pk, ["early"])
    collector = Collector(using="default", origin=queue.connection)
    collector.collect([queue.connection])  # what Connection.delete() does first
    _insert_lines(queue.pk, ["late-1", "late-2"])  # a worker's group, committed meanwhile
    collector.delete()
    assert not SyncQueue.objects.filter(pk=queue.pk).exists()
    assert not SyncQueueLine.objects.filter(queue_id=queue.pk).exists()


def test_the_purge_deletes_the_lines_and_leaves_an_active_queue(queue, fake_clock):
    _insert_lines(queue.pk, ["a", "b"])
    SyncQueue.objects.filter(pk=queue.pk).update(is_active=False, finished_at=clock.now())
    fake_clock.advance(60 * 86400)
    active = SyncQueue.objects.create(organization=queue.organization, connection=queue.connection, resource="orders")
    SyncQueue.objects.filter(pk=active.pk).update(finished_at=clock.now() - dt.timedelta(days=90))
    assert queues_purge() == 1
    assert not SyncQueueLine.objects.filter(queue_id=queue.pk).exists()
    assert SyncQueue.objects.filter(pk=active.pk).exists()


def test_the_purge_does_not_look_up_each_deleted_queues_lines_again(queue, fake_clock):
    """The purge locks its queues before it deletes their lines, so the post_delete look-up per queue
    (lines_of_deleted_queue) is skipped there: its statements on the lines' table do not grow with the
    number of queues."""
    from django.test.utils import CaptureQueriesContext

    for i in range(6):
        q = SyncQueue.objects.create(organization=queue.organization, connection=queue.connection, resource=f"r{i}")
        _insert_lines(q.pk, ["a", "b"])
    SyncQueue.objects.update(is_active=False, finished_at=clock.now())
    fake_clock.advance(60 * 86400)
    with CaptureQueriesContext(db_connection) as ctx:
        assert queues_purge() == 7
    on_lines = [q["sql"] for q in ctx.captured_queries if "sync_syncqueueline" in q["sql"]]
    assert len(on_lines) <= 3, on_lines
    assert not SyncQueueLine.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_purge_skips_a_queue_whose_lock_is_held_and_never_deletes_it_once_retried(org, make_connection):
    """A retry holds an old queue's lock (made active again, not committed yet) when the purge runs: the
    purge skips it at once (SKIP LOCKED) instead of waiting and then deleting a queue just made active."""
    import threading

    conn = make_connection(org, kind="woocommerce", base_url="http://127.0.0.1:9/")
    q = SyncQueue.objects.create(organization=org, connection=conn, resource="customers")
    _insert_lines(q.pk, ["a"])
    SyncQueue.objects.filter(pk=q.pk).update(is_active=False, finished_at=clock.now() - dt.timedelta(days=400))
    held, release, purged = threading.Event(), threading.Event(), []

    def retry():
        try:
            with transaction.atomic():
                lock_queue(q.pk)
                SyncQueue.objects.filter(pk=q.pk).update(is_active=True, finished_at=None)
                held.set()
                release.wait(10)
        finally:
            db_connection.close()

    def purge():
        try:
            purged.append(queues_purge())
        finally:
            db_connection.close()

    holder = threading.Thread(target=retry)
    holder.start()
    assert held.wait(10)
    purger = threading.Thread(target=purge)
    purger.start()
    purger.join(5)
    finished_while_held = not purger.is_alive()
    release.set()
    holder.join(10)
    purger.join(10)
    assert finished_while_held and purged == [0]
    assert SyncQueue.objects.filter(pk=q.pk, is_active=True).exists()
    assert SyncQueueLine.objects.filter(queue_id=q.pk).count() == 1


def test_the_reaper_skips_a_queue_that_is_gone(queue, fake_clock):
    """An expired line whose queue was deleted after the reaper listed it (written here without a queue, as
    nothing in the code can) does not stop the reaper from returning the other queues' lines."""
    _insert_lines(queue.pk, ["a"])
    SyncQueueLine.objects.filter(queue_id=queue.pk).update(
        state=LineState.PROCESSING, lease_until=clock.now(), lease_token="t", attempts=1
    )
    orphan = SyncQueueLine.objects.get(queue_id=queue.pk)
    SyncQueueLine.objects.filter(pk=orphan.pk).update(queue_id=queue.pk + 10_000)  # no constraint refuses it
    _insert_lines(queue.pk, ["b"])
    SyncQueueLine.objects.filter(queue_id=queue.pk, external_id="b").update(
        state=LineState.PROCESSING, lease_until=clock.now(), lease_token="t", attempts=1
    )
    fake_clock.advance(3600)
    result = lines_reap()
    # Line b went back to draft (and its queue, resumed at once in the tests' synchronous broker, then
    # failed it: its record is empty); the orphan was left alone.
    assert result["returned"] == 1
    assert SyncQueueLine.objects.get(queue_id=queue.pk, external_id="b").attempts == 2
    assert SyncQueueLine.objects.get(pk=orphan.pk).state == LineState.PROCESSING


@pytest.mark.django_db(transaction=True)
def test_a_queue_deleted_during_its_fetch_is_not_retried_as_draft_lines(
    fake_conn, fake_kind, monkeypatch, caplog, settings
):
    """The fetcher's next group finds the queue gone (lock_queue raises): the run stops there, without
    trying the group again as draft lines (which would fail the same way), and leaves no line behind."""
    import logging

    from sync import engine, services

    # Groups of at most 1,000 records, so the 3,000 make at least two whatever the timing (a group takes what
    # the producer had ready, up to the cap: a fast machine made one group of all 3,000 and no second call).
    settings.SYNC_FETCH_GROUP_RECORDS = 1000
    fake_kind.__init__(3000)
    q = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    prepare, calls = engine.QueueRunner._prepare_pages, []

    def deleting_prepare(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            SyncQueue.objects.get(pk=q.pk).delete()
        return prepare(self, *args, **kwargs)

    monkeypatch.setattr(engine.QueueRunner, "_prepare_pages", deleting_prepare)
    caplog.set_level(logging.WARNING)
    runner = engine.QueueRunner(SyncQueue.objects.get(pk=q.pk))
    runner.client = runner.connector.client(fake_conn)
    with pytest.raises(SyncQueue.DoesNotExist):
        runner.fetch()
    assert len(calls) == 2
    assert not any("storing them as draft lines" in r.getMessage() for r in caplog.records)
    assert not SyncQueueLine.objects.filter(queue_id=q.pk).exists()
