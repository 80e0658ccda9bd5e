"""Body memos (Page.body_ids, KnownPage) against the WooCommerce sandbox over real HTTP: a later full scan that
gets a body it saw before, byte for byte, does not parse it; any record the run needs after all (a row changed
here, a group stored as drafts) is read from its page then; a memo that is not what was saved is not used;
and every change upstream still lands."""

from __future__ import annotations

import pytest

import connectors.base as base
from connectors.woocommerce.resources import Customers
from customers.models import Customer
from sync import engine, services
from sync.models import PageMemo, QueueState, SyncQueueLine


def _run(conn, resource="customers", **kw):
    q = services.sync_start(connection=conn, resource=resource, **kw).queue
    q.refresh_from_db()
    return q


@pytest.fixture
def parsed(monkeypatch):
    """How many bodies holding records were parsed (connectors.base.response_json calls) since the last reset
    (not the empty ones past the end, which a scan reading ahead asks for and no page is made of)."""
    calls = {"n": 0}
    real = base.response_json

    def counting(response):
        data = real(response)
        calls["n"] += bool(data)
        return data

    monkeypatch.setattr(base, "response_json", counting)
    return calls


def _bodies(conn):
    return PageMemo.objects.filter(connection=conn, resource="customers", digest__startswith="~")


def test_an_unchanged_rescan_parses_no_body_and_writes_nothing(woo, parsed):
    sandbox, conn = woo(size=250)  # pages at offsets 0, 95, 190 (the connector's overlap of 5)
    assert _run(conn).state == QueueState.DONE
    assert parsed["n"] >= 3 and _bodies(conn).count() == 3
    parsed["n"] = 0
    q = _run(conn)
    assert q.state == QueueState.DONE and q.done_count == 250 and q.failed_count == 0
    assert parsed["n"] == 0  # every body was one the first sync had parsed
    assert not Customer.objects.filter(connection=conn, synced_at__gte=q.started_at).exists()
    assert _bodies(conn).count() == 3


def test_a_row_changed_here_is_written_again_from_its_page_read_then(woo, parsed):
    """The look-up says the row is not the snapshot's: the record is needed after all, so its page (and only
    it) is parsed in the main thread, and the row is written from it."""
    sandbox, conn = woo(size=250)
    _run(conn)
    cid = sandbox.ids("customers")[120]  # on the second page only
    Customer.objects.filter(connection=conn, external_id=str(cid)).update(first_name="Local", sync_hash="f" * 32)
    parsed["n"] = 0
    q = _run(conn)
    assert q.state == QueueState.DONE and q.done_count == 250
    row = Customer.objects.get(connection=conn, external_id=str(cid))
    assert row.first_name == sandbox.data["customers"][cid]["first_name"] != "Local"
    assert parsed["n"] == 1
    assert Customer.objects.filter(connection=conn, synced_at__gte=q.started_at).count() == 1


def test_a_changed_body_is_parsed_and_its_change_lands(woo, parsed):
    sandbox, conn = woo(size=250)
    _run(conn)
    cid = sandbox.ids("customers")[120]
    sandbox.update("customers", cid, first_name="Changed")
    parsed["n"] = 0
    q = _run(conn)
    assert q.state == QueueState.DONE
    assert Customer.objects.get(connection=conn, external_id=str(cid)).first_name == "Changed"
    assert parsed["n"] == 1  # the one body that changed
    assert _bodies(conn).count() == 3  # its old memo pruned, its new one saved


def test_a_body_memo_that_is_not_what_was_saved_is_not_used(woo, parsed):
    """Garbled, cut short or moved to another key: its check fails, the body is parsed as without it (a body
    memo's ids decide the paging, so none is guessed at)."""
    sandbox, conn = woo(size=250)
    _run(conn)
    memos = list(_bodies(conn).order_by("digest"))
    memos[0].hashes = b"\0" * len(bytes(memos[0].hashes))
    memos[0].save()
    memos[1].hashes = bytes(memos[2].hashes)  # another page's ids
    memos[1].save()
    parsed["n"] = 0
    q = _run(conn)
    assert q.state == QueueState.DONE and q.done_count == 250
    assert parsed["n"] >= 2  # those two bodies (the last page is read twice, should it be one of them)
    assert not Customer.objects.filter(connection=conn, synced_at__gte=q.started_at).exists()
    parsed["n"] = 0
    assert _run(conn).state == QueueState.DONE and parsed["n"] == 0  # saved again as they should be


def test_a_group_stored_as_drafts_keeps_the_records_of_pages_read_as_known(woo, parsed, monkeypatch):
    """The inline write fails: the group goes the draft way, whose lines hold each record as payload, so the
    known pages are parsed for it; the claimed path then settles them."""
    sandbox, conn = woo(size=250)
    _run(conn)
    payloads = []
    real_add = engine.lines_add

    def inline_fails(self, plan):
        raise RuntimeError("inline write refused")

    def spy(queue, resource, records, **kw):
        payloads.extend(k.record for k in records)
        return real_add(queue, resource, records, **kw)

    monkeypatch.setattr(engine.QueueRunner, "_store_inline", inline_fails)
    monkeypatch.setattr(engine, "lines_add", spy)
    parsed["n"] = 0
    q = _run(conn)
    assert q.state == QueueState.DONE and q.done_count == 250
    assert len(payloads) == 250 and all(isinstance(p, dict) and "email" in p for p in payloads)
    assert parsed["n"] == 3
    assert not SyncQueueLine.objects.filter(queue=q).exclude(state="done").exists()


def test_a_smaller_store_prunes_the_memo_of_the_body_it_no_longer_serves(woo):
    sandbox, conn = woo(size=250)
    _run(conn)
    for cid in sandbox.ids("customers")[190:]:
        sandbox.delete("customers", cid)
    _run(conn)
    # Offsets 0 and 95 (95 now a different body: it ends the store) and nothing at 190.
    assert _bodies(conn).count() == 2


def test_no_body_memo_for_a_page_whose_ids_are_not_integers():
    """Only integer ids say a record's key and external id alone (a string "012" would key as 12)."""
    from connectors.woocommerce.resources import _packed_ids

    assert _packed_ids([{"id": 1}, {"id": 2}]) is not None
    assert _packed_ids([{"id": 1}, {"id": "2"}]) is None
    assert _packed_ids([{"id": 1}, {"id": True}]) is None
    assert _packed_ids([{"id": 1}, {"id": 2.0}]) is None
    assert _packed_ids([{"id": 1}, {"id": 2**63}]) is None
    assert _packed_ids([{"id": 1}, {"name": "x"}]) is None
    assert _packed_ids([{"id": 1}, "x"]) is None


def test_a_resource_that_overrides_its_keys_never_reads_a_body_as_known():
    class ByEmail(Customers):
        def sort_key(self, record):
            return [record["email"]]

    assert Customers()._body_memos() and not ByEmail()._body_memos()


def test_resources_whose_records_carry_a_cursor_never_read_a_body_as_known():
    from connectors.woocommerce.resources import Coupons, Orders, Products

    assert not any(cls()._body_memos() for cls in (Orders, Products, Coupons))


def test_a_body_memo_that_passes_its_check_but_lies_fails_the_run_once_and_is_forgotten(woo, parsed):
    """Its check ties the ids to the key, not to the body: a memo whose ids are not the body's (a parser change
    its revision missed) is found when a record is read from its page. The run fails as for a bad page, every
    body memo of the resource is deleted, and the next run parses and settles everything (found by review:
    before, the memo stayed and every later scan failed the same way)."""
    import struct

    sandbox, conn = woo(size=250)
    _run(conn)
    for memo in _bodies(conn):
        ids = bytes(memo.hashes)[: -engine._BODY_CHECK]
        if not ids:
            continue
        lying = ids[:-8] + struct.pack("<q", 10**9)  # the page's last id replaced: no row holds it
        memo.hashes = lying + engine._body_check(memo.digest, lying)
        memo.save()
    q = _run(conn)
    assert q.state != QueueState.DONE and "does not hold the records its memo says" in (q.fetch_error or q.last_error)
    assert _bodies(conn).count() == 0
    parsed["n"] = 0
    q = _run(conn)
    assert q.state == QueueState.DONE and q.done_count == 250 and parsed["n"] >= 3
    assert Customer.objects.filter(connection=conn, deleted_at__isnull=True).count() == 250
    assert not Customer.objects.filter(connection=conn, external_id=str(10**9)).exists()


def test_an_id_already_queued_is_stored_with_its_record_read_from_a_known_page(woo, parsed, monkeypatch):
    """The "already queued?" path (a resumed fetch, an id met twice) stores the record as a draft line's
    payload: the record of a page read as known is parsed for it, never a placeholder (from the review)."""
    from sync.models import LineState

    sandbox, conn = woo(size=250)
    _run(conn)
    cid = sandbox.ids("customers")[120]
    real_fetch = engine.QueueRunner.fetch

    def fetch_after_a_line(self):  # as if an earlier fetch of this queue had queued that id
        SyncQueueLine.objects.create(
            queue=self.queue, external_id=str(cid), payload={"id": cid}, state=LineState.DONE, action="upsert"
        )
        return real_fetch(self)

    monkeypatch.setattr(engine.QueueRunner, "fetch", fetch_after_a_line)
    added = []
    real_add = engine.lines_add

    def spy(queue, resource, records, **kw):
        added.extend(k.record for k in records)
        return real_add(queue, resource, records, **kw)

    monkeypatch.setattr(engine, "lines_add", spy)
    parsed["n"] = 0
    q = _run(conn)
    assert q.state == QueueState.DONE
    assert len(added) == 1 and isinstance(added[0], dict) and added[0]["id"] == cid and "email" in added[0]
    assert parsed["n"] == 1  # that record's page only
    line = SyncQueueLine.objects.get(queue=q, external_id=str(cid))
    assert line.state == "done" and line.payload.get("email") == added[0]["email"]


def test_with_the_write_pipeline_a_changed_row_is_written_from_its_known_page(woo, parsed, settings):
    """SYNC_WRITE_PIPELINE: the writer thread resolves the group and reads the record from its page."""
    settings.SYNC_WRITE_PIPELINE = True
    sandbox, conn = woo(size=250)
    _run(conn)
    cid = sandbox.ids("customers")[120]
    Customer.objects.filter(connection=conn, external_id=str(cid)).update(first_name="Local", sync_hash="f" * 32)
    parsed["n"] = 0
    q = _run(conn)
    assert q.state == QueueState.DONE and q.done_count == 250 and parsed["n"] == 1
    assert Customer.objects.get(connection=conn, external_id=str(cid)).first_name != "Local"
