"""A first sync's fetch side in a forked process (SYNC_FETCH_PROCESS, sync.fetchproc; PostgreSQL,
or SQLite on a file: tests/sync/test_fetch_process_sqlite.py): it writes what
the fetch thread writes, record for record and line for line; the child's errors come back with their class;
a child that dies fails the run with what was stored kept; a group refused by the database is written again
from records mapped anew."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest

from customers.models import Customer
from sync import engine, fetchproc, services
from sync.models import SyncActivity, SyncQueue, SyncQueueLine
from tests.fakes import UPSTREAM, FakeCustomers, FlakyError
from tests.sync.conftest import assert_counters_match, rows_arrive_first

pytestmark = [pytest.mark.forks_db, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def forks(monkeypatch, settings, fork_beside_test_threads):
    """The fetch processes started (each run's choice is asserted: a run that quietly fetched in a thread
    would prove nothing here)."""
    settings.SYNC_FETCH_PROCESS = True
    started: list[int] = []
    real = fetchproc.ForkedProducer.__init__

    def counting(self, *args, **kwargs):
        real(self, *args, **kwargs)
        started.append(self.pid)

    monkeypatch.setattr(fetchproc.ForkedProducer, "__init__", counting)
    return started


def _upstream_with_every_outcome() -> None:
    """250 customers, and on the same pages: a record the mapper rejects (no email), one whose mapper fails
    transiently every time, one without an id, a deletion, and two ids twice on one page (the last snapshot
    counts: a row's, and a failed line's payload)."""
    UPSTREAM.__init__(250)
    UPSTREAM.records[6]["email"] = ""  # id 7: rejected for good
    UPSTREAM.records[8]["boom"] = True  # id 9: a transient mapper failure, retried to the last attempt
    UPSTREAM.records[10]["deleted"] = True  # id 11: a deletion
    del UPSTREAM.records[12]["id"]  # version 13: cannot be identified
    UPSTREAM.records.append(UPSTREAM.make(15, version=16, email="later@example.com"))  # id 15 again, same page
    UPSTREAM.records.append(UPSTREAM.make(7, version=8, email="", note="second"))  # id 7 again: its payload


def _outcome(conn) -> tuple[list, list]:
    rows = sorted(
        Customer.objects.filter(connection=conn).values_list(
            "external_id", "email", "first_name", "sync_version", "sync_hash", "deleted_at"
        )
    )
    lines = [
        # An unidentifiable record's line gets a random id ("invalid:<n>:<uuid>").
        (ext.rsplit(":", 1)[0] if ext.startswith("invalid:") else ext, *rest)
        for ext, *rest in SyncQueueLine.objects.filter(queue__connection=conn).values_list(
            "external_id", "state", "action", "attempts", "payload", "last_error"
        )
    ]
    return rows, sorted(lines, key=repr)


def _run(conn) -> SyncQueue:
    q = services.sync_start(connection=conn, resource="customers", enqueue=False).queue
    engine.run_queue(q.pk)
    return SyncQueue.objects.get(pk=q.pk)


def test_the_fetch_process_writes_what_the_fetch_thread_writes(
    org, make_connection, fake_kind, forks, settings, monkeypatch
):
    _upstream_with_every_outcome()
    in_process = make_connection(org, kind="fake", name="process")
    mapped_here: list[str] = []  # records mapped in this process (the child's calls stay in the child)
    real_map = engine.QueueRunner._map

    def counting(self, record, **kwargs):
        mapped_here.append(str(record.get("id")))
        return real_map(self, record, **kwargs)

    monkeypatch.setattr(engine.QueueRunner, "_map", counting)
    q = _run(in_process)
    assert len(forks) == 1, "the first sync fetched in a process of its own"
    assert set(mapped_here) == {"9"}, "only the retried line is mapped here: the child mapped the rest"
    settings.SYNC_FETCH_PROCESS = False
    in_thread = make_connection(org, kind="fake", name="thread")
    q2 = _run(in_thread)
    assert len(forks) == 1
    fields = ("state", "pages_fetched", "fetch_token", "cursor_to", "expected_total", "done_count", "failed_count")
    assert [getattr(q, f) for f in fields] == [getattr(q2, f) for f in fields]
    assert q.expected_total == 252  # the fake's total: 250 and the two second snapshots
    process_rows, process_lines = _outcome(in_process)
    thread_rows, thread_lines = _outcome(in_thread)
    assert len(process_rows) == 246  # 250 ids, less the one without an id, ids 7 and 9 (failed) and 11 (deleted)
    assert process_rows == thread_rows
    assert process_lines == thread_lines
    by_id = {line[0]: line for line in process_lines}
    assert by_id["7"][1:4] == ("failed", "upsert", 1) and by_id["7"][4]["note"] == "second", "its last snapshot"
    assert by_id["9"][1] == "failed" and "transient mapper failure" in by_id["9"][5]
    assert by_id["11"][1:3] == ("done", "delete")
    assert by_id["15"][1] == "done" and Customer.objects.get(connection=in_process, external_id="15").email == (
        "later@example.com"
    )
    assert by_id["invalid:0"][1] == "failed" and by_id["invalid:0"][4]["version"] == 13, "the record without an id"
    assert_counters_match(q)


def test_an_error_in_the_fetch_process_fails_the_run_as_in_a_thread(org, make_connection, fake_kind, forks, settings):
    settings.SYNC_FETCH_GROUP_RECORDS = 1  # each page its own group: the pages before the error are stored
    UPSTREAM.__init__(100)
    UPSTREAM.fail_pages[4] = FlakyError("upstream said 503", status=503)
    conn = make_connection(org, kind="fake", name="process")
    q = _run(conn)
    assert len(forks) == 1
    assert q.fetch_error == "upstream said 503"
    assert (q.pages_fetched, q.fetch_token) == (4, 4)
    assert Customer.objects.filter(connection=conn).count() == 40
    failed = SyncActivity.objects.get(queue=q, event="run.failed")
    assert failed.data["error_type"] == "FlakyError" and failed.data["status"] == 503, "its class came back"
    assert "in the fetch process" in failed.data["stack_trace"], "with the child's stack trace"
    assert_counters_match(q)


def _in_child_at_page(monkeypatch, token: int, act) -> None:
    """``act()`` in the fetch process (not this one) just before it asks for the page at ``token``."""
    parent, fetch_page = os.getpid(), FakeCustomers.fetch_page

    def page(self, ctx):
        if os.getpid() != parent and int(ctx.token or 0) == token:
            act()
        return fetch_page(self, ctx)

    monkeypatch.setattr(FakeCustomers, "fetch_page", page)


def test_a_fetch_process_that_dies_fails_the_run_and_keeps_what_was_stored(
    org, make_connection, fake_kind, forks, settings, monkeypatch
):
    settings.SYNC_FETCH_GROUP_RECORDS = 1
    UPSTREAM.__init__(100)
    _in_child_at_page(monkeypatch, 6, lambda: os.kill(os.getpid(), signal.SIGKILL))  # out of memory, say
    conn = make_connection(org, kind="fake", name="process")
    q = _run(conn)
    assert len(forks) == 1
    assert "ended without finishing (killed by signal 9)" in q.fetch_error
    assert (q.pages_fetched, q.fetch_token) == (6, 6), "the token where the last stored page left it"
    assert Customer.objects.filter(connection=conn).count() == 60
    assert set(SyncQueueLine.objects.filter(queue=q).values_list("state", flat=True)) == {"done"}
    assert_counters_match(q)
    with pytest.raises(ChildProcessError):
        os.waitpid(forks[0], os.WNOHANG)  # reaped: no zombie left behind


def test_a_group_the_database_refuses_is_written_again_from_records_mapped_anew(
    org, make_connection, fake_kind, forks, monkeypatch, caplog
):
    """A row that appears meanwhile (a webhook's) makes the group's plain insert fail: the group is written
    again as an upsert, which needs the values the child did not send; the parent maps the records again."""
    UPSTREAM.__init__(30)
    UPSTREAM.records[4]["deleted"] = True  # id 5, a row the webhook made too: its deletion reads the snapshot
    conn = make_connection(org, kind="fake", name="process")
    rows_arrive_first(monkeypatch, org, conn, ("3", "5"))
    caplog.set_level(logging.WARNING, logger="sync.engine")
    q = _run(conn)
    assert len(forks) == 1
    assert q.state == "done"
    assert "storing them as draft lines" not in caplog.text, "written inline, not handed to the draft path"
    assert Customer.objects.get(connection=conn, external_id="3").email == "user3@example.com"
    deleted = Customer.objects.get(connection=conn, external_id="5")
    assert deleted.deleted_at is not None and deleted.sync_version == "5".zfill(30), "the deletion's version"
    rows = dict(Customer.objects.filter(connection=conn, deleted_at=None).values_list("external_id", "first_name"))
    assert rows == {str(i): f"First{i}" for i in range(1, 31) if i != 5}
    assert set(SyncQueueLine.objects.filter(queue=q).values_list("state", "attempts")) == {("done", 1)}


def test_a_page_travels_as_its_body_and_the_parent_makes_its_records_again(
    org, make_connection, fake_kind, forks, monkeypatch
):
    """A page whose reload is one of the resource's methods over plain values (the fake's, as WooCommerce's:
    the body's bytes) is sent as those values, not as packed records (_packed is never called in the child),
    and the parent makes the records again over its own resource where a path needs them: here the group the
    database refuses, written again from them."""
    from core.paging import LazyPage

    monkeypatch.setattr(engine, "_packed", lambda records: pytest.fail("records packed"))
    pages = []
    real = engine.QueueRunner._unship

    def spy(self, shipped):
        page, keyed = real(self, shipped)
        pages.append(page)
        return page, keyed

    monkeypatch.setattr(engine.QueueRunner, "_unship", spy)
    UPSTREAM.__init__(30)
    conn = make_connection(org, kind="fake", name="travels")
    rows_arrive_first(monkeypatch, org, conn, ("3",))
    q = _run(conn)
    assert len(forks) == 1 and q.state == "done", q.fetch_error or q.last_error
    assert len(pages) == 3 and all(type(page) is LazyPage for page in pages)  # pages of 10: one group
    made_again = [page._records for page in pages]
    assert made_again == [UPSTREAM.records[i : i + 10] for i in (0, 10, 20)], "the refused group, made again"
    rows = dict(Customer.objects.filter(connection=conn).values_list("external_id", "email"))
    assert rows == {str(i): f"user{i}@example.com" for i in range(1, 31)}


def test_a_page_with_records_the_parent_reads_at_once_is_sent_packed(
    org, make_connection, fake_kind, forks, monkeypatch
):
    """A deletion, a failed mapping or a record without an id is read by the parent as the page arrives
    (_unship): such a page comes with its records packed, so the parent does not parse its body again; the
    pages without one travel as their reload."""
    loads = []
    real = engine.QueueRunner._unship

    def spy(self, shipped):
        loads.append("reload" if type(shipped[-1]) is tuple else "packed")  # (name, args), or the blob
        return real(self, shipped)

    monkeypatch.setattr(engine.QueueRunner, "_unship", spy)
    UPSTREAM.__init__(40)
    UPSTREAM.records[4]["deleted"] = True  # id 5, page 1
    UPSTREAM.records[16]["email"] = ""  # id 17, page 2: rejected by the mapper
    del UPSTREAM.records[25]["id"]  # page 3: cannot be identified
    conn = make_connection(org, kind="fake", name="packed")
    q = _run(conn)
    assert len(forks) == 1 and q.state == "partial"
    assert loads == ["packed", "packed", "packed", "reload"]


def test_a_page_the_parent_makes_again_otherwise_fails_the_run_and_stores_nothing_of_its_group(
    org, make_connection, fake_kind, forks, monkeypatch
):
    """The records the parent makes again are checked against the ids the child sent: others (here shifted
    by one) raise ReloadMismatch, and the group rolls back instead of being written or stored as drafts."""
    from tests.fakes import FakeCustomers

    real = FakeCustomers._reloaded

    def _reloaded(self, body):  # named as the method it replaces: the parent finds it by that name
        records = real(self, body)
        return records[1:] + records[:1]

    monkeypatch.setattr(FakeCustomers, "_reloaded", _reloaded)
    UPSTREAM.__init__(30)
    conn = make_connection(org, kind="fake", name="otherwise")
    rows_arrive_first(monkeypatch, org, conn, ("3",))  # the plain insert fails: the records are made again
    q = _run(conn)
    assert len(forks) == 1
    assert q.state == "failed" and "holds other records than it held" in (q.fetch_error or q.last_error)
    assert list(Customer.objects.filter(connection=conn).values_list("external_id", "email")) == [
        ("3", "hook@example.com")
    ]
    assert not SyncQueueLine.objects.filter(queue=q).exists() and q.pages_fetched == 0


def test_no_fetch_process_where_it_could_disturb_the_parent(org, make_connection, fake_kind, forks, settings):
    """Not inside a caller's transaction (the parent's open session would be inherited), and only for a first
    sync (a later one compares with stored rows and has nothing to encode ahead)."""
    from django.db import transaction

    UPSTREAM.__init__(30)
    conn = make_connection(org, kind="fake", name="process")
    with transaction.atomic():
        q = services.sync_start(connection=conn, resource="customers", enqueue=False).queue
        assert engine.run_queue(q.pk) == "done"
    assert forks == []
    assert fetchproc.unavailable() is None
    UPSTREAM.records.append(UPSTREAM.make(31))
    assert _run(conn).state == "done"
    assert forks == [], "a later sync fetches in a thread"
    assert Customer.objects.filter(connection=conn).count() == 31


def test_a_run_that_stops_while_the_child_waits_on_a_page_kills_it_at_once(
    org, make_connection, fake_kind, forks, settings, monkeypatch
):
    """The fetch thread waiting on the pipe for a page that takes long (a slow upstream) must not hold up the
    end of a run that stopped (cancelled, its lease lost): the child is killed, not waited for."""
    settings.SYNC_FETCH_GROUP_RECORDS = 1
    UPSTREAM.__init__(100)
    _in_child_at_page(monkeypatch, 2, lambda: time.sleep(60))

    store = engine.QueueRunner._store_page_lines

    def cancelled_after_one(self, records, plan, updates):
        if updates["pages_fetched"] > 1:
            raise engine.RunAborted()  # as when the queue is cancelled (its fetch lease cannot be renewed)
        return store(self, records, plan, updates)

    monkeypatch.setattr(engine.QueueRunner, "_store_page_lines", cancelled_after_one)
    conn = make_connection(org, kind="fake", name="process")
    started = time.monotonic()
    _run(conn)
    assert time.monotonic() - started < 4, "not the fetch thread's 5 s join, nor the child's 60 s page"
    assert len(forks) == 1
    with pytest.raises(ChildProcessError):
        os.waitpid(forks[0], os.WNOHANG)


def _webhook_row_and_an_impure_mapper(monkeypatch, org, conn) -> None:
    """Before the first group is stored here: a row for id 3 appears (a webhook's), so the group's plain insert
    fails and it is written again as an upsert, mapped in this process; and id 4's mapper fails once, in this
    process only (the child mapped it before)."""
    store = engine.QueueRunner._store_page_lines

    def webhook_first(self, records, plan, updates):
        if not UPSTREAM.flaky:
            Customer.objects.create(organization=org, connection=conn, external_id="3", email="hook@example.com")
            UPSTREAM.flaky["4"] = 1
        return store(self, records, plan, updates)

    monkeypatch.setattr(engine.QueueRunner, "_store_page_lines", webhook_first)


def test_a_record_mapped_otherwise_the_second_time_sends_its_group_the_draft_way(
    org, make_connection, fake_kind, forks, monkeypatch, caplog
):
    """Mappers are pure, so mapping again in the parent gives the child's values; one that is not (here it
    fails once, in the parent only) must not write a row the child did not plan: the group goes the draft way,
    where each record is mapped on its own line."""
    UPSTREAM.__init__(30)
    conn = make_connection(org, kind="fake", name="process")
    _webhook_row_and_an_impure_mapper(monkeypatch, org, conn)
    caplog.set_level(logging.WARNING, logger="sync.engine")
    q = _run(conn)
    assert len(forks) == 1
    assert "4: mapped differently a second time" in caplog.text and "storing them as draft lines" in caplog.text
    assert q.state == "done"
    rows = dict(Customer.objects.filter(connection=conn).values_list("external_id", "email"))
    assert rows == {str(i): f"user{i}@example.com" for i in range(1, 31)}


def test_a_group_with_a_row_not_encoded_and_a_record_mapped_otherwise_leaves_no_insert_only_behind(
    org, make_connection, fake_kind, forks, settings, monkeypatch
):
    """Found by review: a first sync's group with a row the encoder gave up on is mapped again in this
    process; if that fails (a mapper that is not pure), the group goes the draft way, and the claimed path
    that then writes its lines must upsert (a row that appeared meanwhile, a webhook's, is there), not insert
    as a first sync's group does."""
    from sync import sinks

    UPSTREAM.__init__(30)
    conn = make_connection(org, kind="fake", name="process")
    real_encoder = sinks.TableSink.row_encoder

    def encoder(self, run):
        encode = real_encoder(self, run)
        return lambda ext, values, now: None if ext == "2" else encode(ext, values, now)  # id 2 not encoded

    monkeypatch.setattr(sinks.TableSink, "row_encoder", encoder)
    _webhook_row_and_an_impure_mapper(monkeypatch, org, conn)
    q = _run(conn)
    assert len(forks) == 1
    assert q.state == "done", dict(
        SyncQueueLine.objects.filter(queue=q).exclude(state="done").values_list("external_id", "last_error")
    )
    rows = dict(Customer.objects.filter(connection=conn).values_list("external_id", "email"))
    assert rows == {str(i): f"user{i}@example.com" for i in range(1, 31)}
