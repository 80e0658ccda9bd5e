"""The write pipeline (SYNC_WRITE_PIPELINE, PostgreSQL): a writer thread with its own connection commits
each group of pages while the fetcher maps the next. Groups still commit whole and in order, every record
once, and the thread's connection does not outlive the fetch."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from customers.models import Customer
from sync import engine, services
from sync.models import LineState, SyncQueue, SyncQueueLine
from tests.sync.conftest import assert_counters_match

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def sessions() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cur.fetchone()[0]


def test_every_group_is_written_by_the_writer_thread_once_and_in_order(fake_conn, fake_kind, settings, monkeypatch):
    settings.SYNC_WRITE_PIPELINE = True
    settings.SYNC_FETCH_GROUP_RECORDS = 1  # every page its own group: 25 hand-overs to the writer
    fake_kind.__init__(250)
    writes: list[tuple[str, int]] = []
    store = engine.QueueRunner._store_page_lines

    def recording(self, records, plan, updates):
        writes.append((threading.current_thread().name, updates["pages_fetched"]))
        return store(self, records, plan, updates)

    monkeypatch.setattr(engine.QueueRunner, "_store_page_lines", recording)
    q = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    before = sessions()
    assert engine.run_queue(q.pk) == "done"
    assert [name.startswith(f"write-queue-{q.pk}") for name, _ in writes] == [True] * 25
    assert [pages for _, pages in writes] == list(range(1, 26)), "groups commit one at a time, in page order"
    assert Customer.objects.filter(connection=fake_conn).count() == 250
    assert set(SyncQueueLine.objects.filter(queue=q).values_list("state", "attempts")) == {(LineState.DONE, 1)}
    q = SyncQueue.objects.get(pk=q.pk)
    assert q.pages_fetched == 25 and q.fetch_done
    assert_counters_match(q)
    # The writer's connection is closed with the fetch (the backend may take a moment to go away).
    for _ in range(50):
        if sessions() <= before:
            break
        threading.Event().wait(0.1)
    assert sessions() <= before


def test_inside_a_callers_transaction_the_fetcher_writes_itself(fake_conn, fake_kind, settings, monkeypatch):
    """A second connection could not see the caller's uncommitted rows: no pipeline there."""
    from django.db import transaction

    settings.SYNC_WRITE_PIPELINE = True
    fake_kind.__init__(30)
    names: list[str] = []
    store = engine.QueueRunner._store_page_lines

    def recording(self, *args):
        names.append(threading.current_thread().name)
        return store(self, *args)

    monkeypatch.setattr(engine.QueueRunner, "_store_page_lines", recording)
    with transaction.atomic():
        q = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
        runner = engine.QueueRunner(q)
        runner.client = runner.connector.client(fake_conn)
        runner.fetch()
    assert names and set(names) == {threading.current_thread().name}
    assert Customer.objects.filter(connection=fake_conn).count() == 30


def test_a_repeat_across_groups_is_caught_by_the_unique_index_and_written_through_the_lookup(
    fake_conn, fake_kind, settings
):
    """A fresh fetch does not look ids up; a record that comes back in a later group (an upstream that
    repeats) hits the lines' unique index, and that group is written again with the look-up: one line per
    record, the newer snapshot goes back to draft and is written."""
    from connectors.base import Page

    settings.SYNC_WRITE_PIPELINE = True
    make = fake_kind.make
    q = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    runner = engine.QueueRunner(q)
    assert runner._take_fetch_lease()
    runner._check_queued = False  # as fetch() sets it for a queue without lines
    assert runner._store_pages([Page([make(1), make(2)], next_token=1)]) == 0
    drafts = runner._store_pages([Page([make(2, first_name="Newer"), make(3)], next_token=None)])
    assert runner._check_queued, "the look-up is on from then on"
    assert drafts == 1
    lines = {line.external_id: line for line in SyncQueueLine.objects.filter(queue=q)}
    assert {k: v.state for k, v in lines.items()} == {"1": "done", "2": "draft", "3": "done"}
    assert lines["2"].payload == make(2, first_name="Newer")
    runner.process_available()
    assert Customer.objects.get(connection=fake_conn, external_id="2").first_name == "Newer"
    assert_counters_match(q)
