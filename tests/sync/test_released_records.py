"""A first sync lets each page's records go in the fetch thread once their rows are encoded (QueueRunner._released,
Page.reload), and reads them again only on a path that needs a record: a group the database refuses is written
again from records made again; a group stored as drafts keeps every record as its payload. On both databases
(TableSink.row_encoder: PostgreSQL's COPY rows, SQLite's parameters)."""

from __future__ import annotations

import logging

import pytest

from core.paging import LazyPage, Page
from customers.models import Customer
from sync import engine, services
from sync.models import SyncQueue, SyncQueueLine
from tests.fakes import UPSTREAM, FakeCustomers
from tests.sync.conftest import rows_arrive_first

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _in_a_thread(settings):
    """The fetch thread's path (on a SQLite file a first sync would fetch in a process by default): the fetch
    process's is tested in tests/sync/test_fetch_process.py."""
    settings.SYNC_FETCH_PROCESS = False


def _run(conn) -> SyncQueue:
    q = services.sync_start(connection=conn, resource="customers", enqueue=False).queue
    engine.run_queue(q.pk)  # not through django-q2's inline mode, which runs the task inside a transaction
    return SyncQueue.objects.get(pk=q.pk)


@pytest.fixture
def prepared_pages(monkeypatch):
    """Every page that reached _prepare_pages (the main thread), in order."""
    pages: list[Page] = []
    real = engine.QueueRunner._prepare_pages

    def spy(self, group):
        pages.extend(page for page, _ in group)
        return real(self, group)

    monkeypatch.setattr(engine.QueueRunner, "_prepare_pages", spy)
    return pages


@pytest.fixture
def merged(monkeypatch):
    """Every group's plan as _merge_pages made it."""
    plans: list = []
    real = engine.QueueRunner._merge_pages
    monkeypatch.setattr(
        engine.QueueRunner, "_merge_pages", lambda self, pages: plans.append(real(self, pages)) or plans[-1]
    )
    return plans


def test_a_first_sync_hands_over_pages_whose_records_were_let_go_and_never_made_again(
    org, make_connection, fake_kind, prepared_pages, merged
):
    UPSTREAM.__init__(120)  # pages of 10 (FakeCustomers.page_size): 12
    conn = make_connection(org, kind="fake", name="released")
    q = _run(conn)
    assert q.state == "done" and q.done_count == 120
    assert len(prepared_pages) == 12 and all(type(page) is LazyPage for page in prepared_pages)
    assert all(page._records is None for page in prepared_pages), "no record was asked for again"
    plans = [plan for plan in merged if plan.ready]
    assert sum(len(plan.ready) for plan in plans) == 120
    assert all(
        type(record) is engine._Later and values is engine._SHIPPED
        for plan in plans
        for record, _, values in plan.ready.values()
    ), "the plan holds no record nor values: those were let go"
    rows = dict(Customer.objects.filter(connection=conn).values_list("external_id", "email"))
    assert rows == {str(i): f"user{i}@example.com" for i in range(1, 121)}


def test_a_page_that_cannot_make_its_records_again_keeps_them(
    org, make_connection, fake_kind, prepared_pages, monkeypatch
):
    real = FakeCustomers.fetch_page
    monkeypatch.setattr(FakeCustomers, "fetch_page", lambda self, ctx: _without_reload(real(self, ctx)))
    UPSTREAM.__init__(60)
    conn = make_connection(org, kind="fake", name="kept")
    assert _run(conn).state == "done"
    assert [type(page) for page in prepared_pages] == [Page] * 6
    assert Customer.objects.filter(connection=conn).count() == 60


def _without_reload(page: Page) -> Page:
    import dataclasses

    return dataclasses.replace(page, reload=None)


def test_a_group_the_database_refuses_is_written_again_from_records_made_again(
    org, make_connection, fake_kind, prepared_pages, monkeypatch, caplog
):
    """A row that appears meanwhile (a webhook's) makes the first group's plain insert fail: the group is
    written again as an upsert from the records its pages make again, mapped anew; a deletion among them reads
    its own snapshot (kept: only encoded rows are let go)."""
    UPSTREAM.__init__(30)
    UPSTREAM.records[4]["deleted"] = True  # id 5
    conn = make_connection(org, kind="fake", name="refused")
    rows_arrive_first(monkeypatch, org, conn, ("3", "5"))
    caplog.set_level(logging.WARNING, logger="sync.engine")
    q = _run(conn)
    assert q.state == "done"
    assert "storing them as draft lines" not in caplog.text, "written again inline, not handed to the draft path"
    assert type(prepared_pages[0]) is LazyPage and prepared_pages[0]._records is not None, "made again"
    assert Customer.objects.get(connection=conn, external_id="3").email == "user3@example.com"
    deleted = Customer.objects.get(connection=conn, external_id="5")
    assert deleted.deleted_at is not None and deleted.sync_version == "5".zfill(30)
    rows = dict(Customer.objects.filter(connection=conn, deleted_at=None).values_list("external_id", "first_name"))
    assert rows == {str(i): f"First{i}" for i in range(1, 31) if i != 5}
    assert set(SyncQueueLine.objects.filter(queue=q).values_list("state", "attempts")) == {("done", 1)}


@pytest.mark.postgres
def test_a_group_stored_as_drafts_keeps_every_record_as_its_payload(org, make_connection, fake_kind, caplog):
    """A value PostgreSQL refuses (an email longer than its column; SQLite's mapping checks it first) fails
    the group's write: the group goes the draft way, each line with its record, made again from the page, and
    the bad one fails its own line."""
    UPSTREAM.__init__(30)
    UPSTREAM.records[6]["email"] = "x" * 300 + "@example.com"  # id 7
    conn = make_connection(org, kind="fake", name="drafts")
    caplog.set_level(logging.WARNING, logger="sync.engine")
    q = _run(conn)
    assert "storing them as draft lines" in caplog.text
    assert q.state == "partial" and q.done_count == 29
    failed = SyncQueueLine.objects.get(queue=q, state="failed")
    assert failed.external_id == "7" and failed.payload == UPSTREAM.records[6]
    payloads = dict(SyncQueueLine.objects.filter(queue=q, state="done").values_list("external_id", "payload"))
    assert payloads == {str(r["id"]): r for r in UPSTREAM.records if r["id"] != 7}
    assert Customer.objects.filter(connection=conn).count() == 29


def test_a_page_with_a_row_the_encoder_gave_up_on_keeps_its_records(
    org, make_connection, fake_kind, prepared_pages, monkeypatch
):
    """A page is let go only when every upsert on it was encoded. (Its group is then written from values, so the
    main thread maps the group's let-go records again, _shipped_values: the cost of a row the encoder gives up
    on, which is rare.)"""
    from sync import sinks

    real_encoder = sinks.TableSink.row_encoder

    def encoder(self, run):
        encode = real_encoder(self, run)
        return lambda ext, values, now: None if ext == "12" else encode(ext, values, now)

    monkeypatch.setattr(sinks.TableSink, "row_encoder", encoder)
    UPSTREAM.__init__(30)
    conn = make_connection(org, kind="fake", name="partly")
    assert _run(conn).state == "done"
    assert [type(page) for page in prepared_pages] == [LazyPage, Page, LazyPage], "ids 11-20: the second page"
    rows = dict(Customer.objects.filter(connection=conn).values_list("external_id", "email"))
    assert rows == {str(i): f"user{i}@example.com" for i in range(1, 31)}


def test_a_page_made_again_with_other_records_fails_the_run_and_stores_nothing_of_its_group(
    org, make_connection, fake_kind, monkeypatch, caplog
):
    """A page whose records come back otherwise (here shifted by one) must not be written from them, nor
    stored as drafts with the wrong payloads: its group rolls back and the run fails as for a bad page, the
    token where the last stored group left it."""
    real = FakeCustomers.fetch_page

    def shifted(self, ctx):
        page = real(self, ctx)
        return _with_reload(page, lambda: page.reload()[1:] + page.reload()[:1])

    monkeypatch.setattr(FakeCustomers, "fetch_page", shifted)
    UPSTREAM.__init__(30)
    conn = make_connection(org, kind="fake", name="mismatch")
    rows_arrive_first(monkeypatch, org, conn, ("3",))  # the plain insert fails: the records are made again
    caplog.set_level(logging.WARNING, logger="sync.engine")
    q = _run(conn)
    assert q.state == "failed" and "holds other records than it held" in (q.fetch_error or q.last_error)
    assert "storing them as draft lines" not in caplog.text
    assert list(Customer.objects.filter(connection=conn).values_list("external_id", "email")) == [
        ("3", "hook@example.com")
    ]
    assert not SyncQueueLine.objects.filter(queue=q).exists() and q.pages_fetched == 0


def _with_reload(page: Page, reload) -> Page:
    import dataclasses

    return dataclasses.replace(page, reload=reload)
