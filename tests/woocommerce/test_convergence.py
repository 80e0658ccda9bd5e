"""Issue 16 against the WooCommerce sandbox over real HTTP: stale snapshots never land, trash and deletions
converge through the reconciliation full scan, a record without an id fails only its line, long names are
kept, and a connection pointed at another store resets its cursors without wiping the first store's rows."""

from __future__ import annotations

import copy

from django.test import Client

from commerce.models import Order
from customers.models import Customer
from sync import services, tasks
from sync.models import LineState, QueueState, SyncActivity, SyncQueueLine, SyncStatus


def _run(conn, resource="customers", **kw):
    q = services.sync_start(connection=conn, resource=resource, **kw).queue
    q.refresh_from_db()
    return q


def _push(conn, resource, record):
    hook = services.sync_enqueue_records(connection=conn, resource=resource, records=[record])
    hook.refresh_from_db()
    return hook


def test_an_older_order_body_never_overwrites_the_newer_one(woo):
    sandbox, conn = woo(size=20)
    assert _run(conn, "orders").state == QueueState.DONE
    oid = sandbox.ids("orders")[0]
    old_body = copy.deepcopy(sandbox.data["orders"][oid])
    sandbox.update("orders", oid, status="completed")
    _run(conn, "orders")
    assert Order.objects.get(connection=conn, external_id=str(oid)).status == "completed"
    _push(conn, "orders", old_body)  # a captured delivery replayed, or a page fetched before the edit
    assert Order.objects.get(connection=conn, external_id=str(oid)).status == "completed"


def test_a_trashed_order_is_deleted_by_its_delivery_and_by_the_reconciliation_scan(woo):
    sandbox, conn = woo(size=40)
    _run(conn, "orders")
    first, second = sandbox.ids("orders")[:2]
    # The delivery WooCommerce sends for "Move to trash" (order.updated, status trash) deletes at once.
    _push(conn, "orders", sandbox.trash("orders", first))
    assert Order.objects.get(connection=conn, external_id=str(first)).deleted_at is not None
    # Trashed without a delivery reaching us: incremental runs cannot see it (the list leaves it out)...
    sandbox.trash("orders", second)
    _run(conn, "orders")
    assert Order.objects.get(connection=conn, external_id=str(second)).deleted_at is None
    # ...the scheduled reconciliation (a full scan) does.
    queue_id = tasks.start_scheduled_sync(conn.pk, "orders", True)
    assert Order.objects.get(connection=conn, external_id=str(second)).deleted_at is not None
    marked = SyncActivity.objects.get(queue_id=queue_id, event="records.marked_deleted")
    assert marked.data["count"] == 1
    # Restored from the trash upstream: it comes back with a newer modified date.
    sandbox.update("orders", second, status="processing")
    _run(conn, "orders")
    assert Order.objects.get(connection=conn, external_id=str(second)).deleted_at is None


def test_a_customer_without_an_id_fails_its_line_and_the_rest_lands(woo):
    sandbox, conn = woo(size=250)  # three pages of 100
    listed = sandbox._filtered

    def without_one_id(req, name):
        rows = listed(req, name)
        if name == "customers" and isinstance(rows, list) and len(rows) > 150:
            rows = copy.deepcopy(rows)
            del rows[150]["id"]  # one record on the second page arrives without an id
        return rows

    sandbox._filtered = without_one_id
    q = _run(conn)
    assert q.state == QueueState.PARTIAL and q.action_required
    assert q.failed_count == 1 and Customer.objects.filter(connection=conn).count() == 249
    line = SyncQueueLine.objects.get(queue=q, state=LineState.FAILED)
    assert "record has no id" in line.last_error


def test_a_10000_character_name_is_kept_whole_and_an_over_long_sku_fails_its_line(woo):
    sandbox, conn = woo(size=20)
    cid = sandbox.ids("customers")[0]
    sandbox.update("customers", cid, first_name="N" * 10_000)
    assert _run(conn).state == QueueState.DONE
    assert Customer.objects.get(connection=conn, external_id=str(cid)).first_name == "N" * 10_000
    pid = sandbox.ids("products")[0]
    sandbox.update("products", pid, sku="S" * 300)
    q = _run(conn, "products", full_scan=True)
    assert q.state == QueueState.PARTIAL
    line = SyncQueueLine.objects.get(queue=q, external_id=str(pid))
    assert line.state == LineState.FAILED and "sku is 300 characters long; at most 255 fit" in line.last_error


def _edit(client, conn, **changes):
    data = {
        "organization": conn.organization_id,
        "kind": conn.kind,
        "name": conn.name,
        "base_url": conn.base_url,
        "external_account_id": conn.external_account_id,
        "config": "{}",
        "is_active": "on",
        **changes,
    }
    return client.post(f"/admin/connectors/connection/{conn.pk}/change/", data)


def test_pointing_a_connection_at_another_store_asks_first_resets_cursors_and_wipes_nothing(woo, make_sandbox, staff):
    sandbox, conn = woo(size=150)
    assert _run(conn).state == QueueState.DONE and _run(conn, "orders").state == QueueState.DONE
    first_store = Customer.objects.filter(connection=conn, deleted_at__isnull=True).count()
    assert SyncStatus.objects.get(connection=conn, resource="orders").cursor
    other, other_base = make_sandbox(size=5, seed=2, consumer_key="ck_other_store", consumer_secret="cs_other")

    client = Client()
    client.force_login(staff)
    refused = _edit(
        client, conn, base_url=other_base, secret__consumer_key="ck_other_store", secret__consumer_secret="cs_other"
    )
    assert refused.status_code == 200 and b"changes which upstream the connection reads" in refused.content
    conn.refresh_from_db()
    assert conn.base_url != other_base  # nothing saved without the confirmation

    saved = _edit(
        client,
        conn,
        base_url=other_base,
        secret__consumer_key="ck_other_store",
        secret__consumer_secret="cs_other",
        confirm_reset="on",
    )
    assert saved.status_code == 302, saved.content[:2000]
    conn.refresh_from_db()
    assert conn.base_url == other_base
    assert SyncStatus.objects.get(connection=conn, resource="orders").cursor == ""  # reset
    assert SyncActivity.objects.filter(connection=conn, event="connection.cursors_reset").exists()

    q = _run(conn)  # the full scan of the other store sees none of the first store's customers
    assert q.state == QueueState.DONE and q.action_required and q.pending_deletions >= first_store - 5
    assert Customer.objects.filter(connection=conn, deleted_at__isnull=False).count() == 0  # nothing wiped
    orders = _run(conn, "orders")
    assert orders.cursor_from == ""  # the first store's cursor is not used against the other one
