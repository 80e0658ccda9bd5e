"""End to end through the engine against the sandbox over real HTTP: the original system's scenarios,
incremental cursors and faults ending in the right line and queue states."""

from __future__ import annotations

import pytest

from commerce.models import Order
from connectors.woocommerce.resources import Customers
from customers.models import Customer
from sync import engine, services
from sync.models import LineState, QueueState, SyncQueue, SyncQueueLine, SyncStatus


def _run(conn, resource="customers", **kw) -> SyncQueue:
    q = services.sync_start(connection=conn, resource=resource, **kw).queue
    q.refresh_from_db()
    return q


def _status(conn, resource="customers") -> SyncStatus:
    return SyncStatus.objects.get(connection=conn, resource=resource)


# --- the original scenarios -------------------------------------------------------------------------------
def test_normal_sync_of_797_customers(woo):
    sandbox, conn = woo(size=797)
    q = _run(conn)
    assert q.state == QueueState.DONE and not q.action_required, q.last_error
    assert q.total_count == q.done_count == 797 and q.expected_total == 797
    assert Customer.objects.filter(connection=conn, organization=conn.organization).count() == 797
    assert _status(conn).state == "success" and _status(conn).records_synced == 797
    some = sandbox.data["customers"][sandbox.ids("customers")[400]]
    row = Customer.objects.get(connection=conn, external_id=str(some["id"]))
    assert (row.email, row.username, row.phone) == (some["email"], some["username"], some["billing"]["phone"])


def test_retry_of_a_queue_with_5_failed_customers(woo, monkeypatch):
    sandbox, conn = woo(size=60)
    flaky = set(sandbox.ids("customers")[10:15])
    original = Customers.map

    def broken(self, record):
        if record["id"] in flaky:
            raise RuntimeError("database hiccup while mapping")  # not a MappingError: retried, then failed
        return original(self, record)

    monkeypatch.setattr(Customers, "map", broken)
    q = _run(conn)
    assert q.state == QueueState.PARTIAL and q.action_required
    assert q.failed_count == 5 and q.done_count == 55
    failed = SyncQueueLine.objects.filter(queue=q, state=LineState.FAILED)
    assert {int(x) for x in failed.values_list("external_id", flat=True)} == flaky
    assert all(line.attempts == 3 for line in failed)

    monkeypatch.setattr(Customers, "map", original)
    services.queue_retry(queue=q)
    q.refresh_from_db()
    assert q.state == QueueState.DONE and q.done_count == 60 and q.failed_count == 0 and not q.action_required
    assert Customer.objects.filter(connection=conn).count() == 60
    assert _status(conn).state == "success"


def test_force_done_of_a_queue_that_needs_action(woo):
    sandbox, conn = woo(size=40)
    for cid in sandbox.ids("customers")[:5]:
        sandbox.update("customers", cid, email="", billing={**sandbox.data["customers"][cid]["billing"], "email": ""})
    q = _run(conn)
    assert q.state == QueueState.PARTIAL and q.action_required and q.failed_count == 5
    line = SyncQueueLine.objects.filter(queue=q, state=LineState.FAILED).first()
    assert "no email" in line.last_error and line.attempts == 1  # a bad record fails at once, alone
    assert _status(conn).state == "failed"

    q = services.queue_force_done(queue=q)
    assert q.state == QueueState.DONE and not q.action_required and not q.is_active
    assert q.cancelled_count == 5 and q.done_count == 35
    assert _status(conn).state == "success"


class WorkerDied(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the engine records it."""


def test_restart_with_the_same_idempotency_key_resumes(woo, monkeypatch, fake_clock, settings):
    sandbox, conn = woo(size=797)
    # Groups of a page or two (the default, 1,000 records, would take all 9 pages in one group).
    settings.SYNC_FETCH_GROUP_RECORDS = 100
    offsets: list[int] = []
    sandbox.on_list = lambda name, info: offsets.append(info["offset"])
    first = services.sync_start(connection=conn, resource="customers", idempotency_key="nightly-42", enqueue=False)

    pages = {"n": 0}
    real_store = engine.QueueRunner._store_pages

    def die_after_three_pages(self, group, **kwargs):
        stored = real_store(self, group, **kwargs)
        pages["n"] += len(group)  # the producer may hand over several ready pages at once
        if pages["n"] >= 3:
            raise WorkerDied()
        return stored

    monkeypatch.setattr(engine.QueueRunner, "_store_pages", die_after_three_pages)
    with pytest.raises(WorkerDied):
        engine.run_queue(first.queue.pk)
    monkeypatch.setattr(engine.QueueRunner, "_store_pages", real_store)
    q = SyncQueue.objects.get(pk=first.queue.pk)
    assert q.is_active and not q.fetch_done and q.pages_fetched == pages["n"] and q.fetch_token
    assert Customer.objects.filter(connection=conn).count() < 797

    fake_clock.advance(settings.SYNC_LEASE_SECONDS + 1)  # the dead worker's fetch lease runs out
    offsets.clear()
    again = services.sync_start(connection=conn, resource="customers", idempotency_key="nightly-42")
    assert again.reason == "idempotent" and again.queue.pk == first.queue.pk and not again.created
    q.refresh_from_db()
    assert q.state == QueueState.DONE, q.last_error
    assert SyncQueue.objects.filter(connection=conn).count() == 1
    assert q.total_count == 797 and q.done_count == 797
    assert Customer.objects.filter(connection=conn).count() == 797
    # Resumed after the stored pages, not from the start.
    assert 0 not in offsets and min(offsets) >= pages["n"] * 95 - 200

    with pytest.raises(services.IdempotencyConflict):
        services.sync_start(connection=conn, resource="customers", idempotency_key="nightly-42", full_scan=True)


# --- deletions, cursors ------------------------------------------------------------------------------------
def test_missing_customers_marked_deleted_only_after_a_complete_scan(woo):
    sandbox, conn = woo(size=350)
    _run(conn)
    gone = sandbox.ids("customers")[100:103]
    for cid in gone:
        sandbox.delete("customers", cid)

    sandbox.faults.error_pages = {190: 500}  # the third page keeps failing: the scan is incomplete
    q = _run(conn)
    assert q.state == QueueState.PARTIAL and q.action_required and "500" in q.fetch_error
    assert q.done_count == 195 and _status(conn).state == "failed"  # pages at offsets 0 and 95
    assert not Customer.objects.filter(connection=conn, deleted_at__isnull=False).exists()

    sandbox.faults.error_pages = {}
    services.queue_retry(queue=q)  # resumes fetching from the failed page
    q.refresh_from_db()
    assert q.state == QueueState.DONE and q.done_count == 347
    deleted = set(
        Customer.objects.filter(connection=conn, deleted_at__isnull=False).values_list("external_id", flat=True)
    )
    assert deleted == set(map(str, gone))
    assert Customer.objects.filter(connection=conn).count() == 350  # marked, never hard-deleted


def test_orders_incremental_with_overlapping_cursor(woo):
    sandbox, conn = woo(size=20, orders=250)
    sandbox.app.record_requests = True
    q1 = _run(conn, "orders")
    assert q1.state == QueueState.DONE and q1.done_count == 250
    cursor = _status(conn, "orders").cursor
    newest = max(sandbox.data["orders"].values(), key=lambda o: (o["date_modified_gmt"], o["id"]))
    assert cursor == newest["date_modified_gmt"] + "Z"

    changed = sandbox.ids("orders")[:3]
    for oid in changed:
        sandbox.update("orders", oid, status="refunded")
    sandbox.app.requests_seen.clear()
    q2 = _run(conn, "orders")
    assert q2.state == QueueState.DONE
    first = sandbox.app.requests_seen[0]
    assert first.arg("dates_are_gmt") == "true" and first.arg("orderby") == "id" and first.arg("order") == "asc"
    assert first.arg("modified_after") and first.arg("modified_after") < newest["date_modified_gmt"]  # overlap
    fetched = set(SyncQueueLine.objects.filter(queue=q2).values_list("external_id", flat=True))
    assert set(map(str, changed)) <= fetched and str(newest["id"]) in fetched  # inclusive: the edge is re-read
    assert len(fetched) < 20
    assert set(
        Order.objects.filter(connection=conn, external_id__in=map(str, changed)).values_list("status", flat=True)
    ) == {"refunded"}
    assert _status(conn, "orders").cursor > cursor

    q3 = _run(conn, "orders", full_scan=True)
    assert q3.total_count == 250 and q3.state == QueueState.DONE


def test_products_sync(woo):
    sandbox, conn = woo(size=5, products=130)
    q = _run(conn, "products")
    assert q.state == QueueState.DONE and q.done_count == 130


# --- faults -------------------------------------------------------------------------------------------------
def test_transient_500s_are_retried(woo):
    sandbox, conn = woo(size=250)
    sandbox.faults.fail_next = [500, 503, 500]
    q = _run(conn)
    assert q.state == QueueState.DONE and q.done_count == 250


def test_429_waits_retry_after(woo, fake_clock):
    sandbox, conn = woo(size=120)
    sandbox.faults.rate_limit_next = 2
    sandbox.faults.retry_after = "3"
    q = _run(conn)
    assert q.state == QueueState.DONE and q.done_count == 120
    assert fake_clock.sleeps.count(3.0) == 2


def test_timeouts_are_retried(woo, settings):
    settings.SYNC_HTTP_TIMEOUT = (2.0, 0.2)
    sandbox, conn = woo(size=50)
    sandbox.faults.hang_next, sandbox.faults.hang_seconds = 1, 0.5
    q = _run(conn)
    assert q.state == QueueState.DONE and q.done_count == 50


def test_malformed_page_fails_the_run_and_keeps_the_cursor(woo):
    sandbox, conn = woo(size=5, orders=300)
    sandbox.faults.malformed_pages = {95}
    q = _run(conn, "orders")
    assert q.state == QueueState.PARTIAL and q.action_required and "malformed" in q.fetch_error
    assert q.done_count == 100  # the first page's lines were committed and processed
    status = _status(conn, "orders")
    assert status.state == "failed" and status.cursor == ""


def test_html_page_is_transient_then_fails_the_run(woo, settings):
    settings.SYNC_HTTP_MAX_TRIES = 2
    sandbox, conn = woo(size=5)
    sandbox.faults.html_pages = {0}
    q = _run(conn)
    assert q.state == QueueState.FAILED and "expected JSON" in q.fetch_error and q.total_count == 0


def test_bad_key_marks_the_connection_for_reauth(woo):
    sandbox, conn = woo(size=5)
    conn.credentials = {**conn.credentials, "consumer_key": "ck_revoked"}
    conn.save()
    q = _run(conn)
    conn.refresh_from_db()
    assert q.state == QueueState.FAILED and "woocommerce_rest_cannot_view" in q.fetch_error
    assert conn.needs_reauth
    from sync.models import SyncActivity

    for act in SyncActivity.objects.all():
        assert "cs_sandbox" not in act.message + str(act.data)
    assert "cs_sandbox" not in q.fetch_error + conn.last_error
    with pytest.raises(services.ConnectionUnavailable):
        services.sync_start(connection=conn, resource="customers")


def test_edit_behind_the_scan_is_caught_by_the_next_run(woo, fake_clock, monkeypatch):
    """Cursor = newest modified seen, capped at the scan's start (the store's Date header): an order
    edited after its page was read, followed by a newer edit we did read, must not fall behind the cursor."""
    sandbox, conn = woo(size=5, orders=250)
    ids = sandbox.ids("orders")
    state = {"n": 0}

    def edits(name, info):
        state["n"] += 1
        if state["n"] == 1:  # page 1 was just read: edit one of its orders, then a later one
            fake_clock.advance(100)
            sandbox.update("orders", ids[5], status="cancelled")
            fake_clock.advance(100)
            sandbox.update("orders", ids[240], status="cancelled")

    sandbox.on_list = edits
    from connectors.woocommerce import conf

    monkeypatch.setattr(conf, "PAGE_CONCURRENCY", 1)  # page 1 is read strictly before the edits
    _run(conn, "orders")
    sandbox.on_list = None
    assert Order.objects.get(connection=conn, external_id=str(ids[240])).status == "cancelled"
    assert Order.objects.get(connection=conn, external_id=str(ids[5])).status != "cancelled"  # read before the edit
    fake_clock.advance(300)
    q = _run(conn, "orders")
    assert q.state == QueueState.DONE
    assert Order.objects.get(connection=conn, external_id=str(ids[5])).status == "cancelled"
