"""A first WooCommerce sync with its fetch side in a forked process (SYNC_FETCH_PROCESS; PostgreSQL, or
SQLite on a file), against
the WooCommerce sandbox over real HTTP: the rows, the page memos and the body memos it saves are those the
fetch thread saves, so the next full scan parses no body either."""

from __future__ import annotations

import pytest

import connectors.base as base
from customers.models import Customer
from sync import engine, fetchproc, services
from sync.models import PageMemo, QueueState

pytestmark = [pytest.mark.forks_db, pytest.mark.django_db(transaction=True)]


def _first_sync(conn):
    q = services.sync_start(connection=conn, resource="customers", enqueue=False).queue
    engine.run_queue(q.pk)  # not through django-q2's inline mode, which runs the task inside a transaction
    q.refresh_from_db()
    return q


def _saved(conn):
    rows = sorted(
        Customer.objects.filter(connection=conn).values_list("external_id", "email", "sync_version", "sync_hash")
    )
    memos = sorted(PageMemo.objects.filter(connection=conn).values_list("resource", "digest", "hashes"))
    return rows, memos


def test_the_fetch_process_saves_the_rows_and_memos_the_fetch_thread_saves(
    woo, org, make_connection, settings, monkeypatch, fork_beside_test_threads
):
    sandbox, in_process = woo(size=250)  # pages at offsets 0, 95, 190
    in_thread = make_connection(
        org, kind="woocommerce", name="thread", base_url=in_process.base_url, credentials=in_process.credentials
    )
    fork_beside_test_threads()  # the sandbox's server thread, idle until asked
    started = []
    real = fetchproc.ForkedProducer.__init__

    def counting(self, *args, **kwargs):
        real(self, *args, **kwargs)
        started.append(self.pid)

    monkeypatch.setattr(fetchproc.ForkedProducer, "__init__", counting)
    settings.SYNC_FETCH_PROCESS = True
    q = _first_sync(in_process)
    assert len(started) == 1 and q.state == QueueState.DONE and q.done_count == 250
    settings.SYNC_FETCH_PROCESS = False
    assert _first_sync(in_thread).state == QueueState.DONE
    assert len(started) == 1
    process_rows, process_memos = _saved(in_process)
    thread_rows, thread_memos = _saved(in_thread)
    assert len(process_rows) == 250 and process_rows == thread_rows
    assert len(process_memos) == 6, "3 pages: a page memo and a body memo each"
    assert process_memos == thread_memos

    parsed = []
    response_json = base.response_json
    monkeypatch.setattr(base, "response_json", lambda response: parsed.append(1) or response_json(response))
    settings.SYNC_FETCH_PROCESS = True
    q = _first_sync(in_process)  # not a first sync now: fetched in a thread, from the memos the child's pages made
    assert q.state == QueueState.DONE and q.done_count == 250 and len(started) == 1
    assert sum(1 for _ in parsed) <= 1, "no body with records parsed (at most the empty one past the end)"


def test_records_a_path_needs_are_parsed_in_the_parent_from_the_body_the_child_sent(
    woo, org, settings, monkeypatch, fork_beside_test_threads
):
    """Each page travels as its body, encoding, path, keys and ``last`` (Page.reload, _travelling), never as
    packed records; where a path needs the records (the group's plain insert refused: rows a webhook made
    appeared meanwhile) the parent parses them from that body with the resource's _reloaded, the pages after
    the first included (their records are those after ``last``), and the group is written from them."""
    from connectors.woocommerce.resources import Customers
    from tests.sync.conftest import rows_arrive_first

    sandbox, conn = woo(size=250)  # pages at offsets 0, 95, 190 (and the empty one past the end)
    fork_beside_test_threads()
    started = []
    real_init = fetchproc.ForkedProducer.__init__
    monkeypatch.setattr(
        fetchproc.ForkedProducer, "__init__", lambda self, *a, **k: real_init(self, *a, **k) or started.append(1)
    )
    monkeypatch.setattr(engine, "_packed", lambda records: pytest.fail("records packed"))
    made = []
    real_reloaded = Customers._reloaded

    def _reloaded(self, content, encoding, path, keys, last):  # the name the parent looks the method up by
        records = real_reloaded(self, content, encoding, path, keys, last)
        made.append((last, [r["id"] for r in records]))
        return records

    monkeypatch.setattr(Customers, "_reloaded", _reloaded)
    settings.SYNC_FETCH_PROCESS = True
    rows_arrive_first(monkeypatch, org, conn, ("3", "120"))
    q = _first_sync(conn)
    assert started == [1] and q.state == QueueState.DONE and q.done_count == 250, q.fetch_error or q.last_error
    lasts = [last for last, _ in made]
    assert lasts[0] is None and all(last is not None for last in lasts[1:]) and len(lasts) >= 3, lasts
    rows = dict(Customer.objects.filter(connection=conn).values_list("external_id", "email"))
    made_ids = sorted(i for _, ids in made for i in ids)
    assert made_ids == sorted(int(ext) for ext in rows), "each record made once, those after ``last`` on a page"
    assert len(rows) == 250 and "hook@example.com" not in rows.values(), "written from the records made again"
