"""WooCommerce coupons: the resource added by docs/connectors/adding-a-resource.md (resource class + pure
mapper, commerce.Coupon, one registry entry; no engine change), proven against the vendor's published
examples (tests/fixtures/vendor/woocommerce/coupon*.json) and end to end against the sandbox."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal

import pytest
import requests

from commerce.models import Coupon
from connectors.base import MappingError
from connectors.woocommerce.resources import Coupons
from connectors.woocommerce.sandbox import WooSandbox
from sync import services
from sync.models import QueueState, SyncQueue, SyncQueueLine, SyncStatus
from sync.registry import get_connector
from tests.vendor_fixtures import load

AUTH = ("ck_sandbox", "cs_sandbox")


def _run(conn, **kw) -> SyncQueue:
    queue = services.sync_start(connection=conn, resource="coupons", **kw).queue
    queue.refresh_from_db()
    return queue


def _fetched(queue) -> set[str]:
    return set(SyncQueueLine.objects.filter(queue=queue).values_list("external_id", flat=True))


# --- the mapper over the vendor's published payloads -------------------------------------------------------
def test_mapper_over_the_published_coupon():
    values = Coupons().map(load("woocommerce", "coupon"))
    assert values["code"] == "10off" and values["discount_type"] == "percent"
    assert values["amount"] == Decimal("10.00") and values["minimum_amount"] == Decimal("100.00")
    assert values["maximum_amount"] is None  # "0.00" is WooCommerce's "no maximum"
    assert values["expires_at"] is None and values["usage_limit"] is None and values["usage_count"] == 0
    assert values["individual_use"] is True and values["exclude_sale_items"] is True
    assert values["free_shipping"] is False and values["description"] == ""
    # *_gmt is UTC (the published example's site runs at UTC-3: 15:23 local)
    assert values["upstream_created_at"] == dt.datetime(2017, 3, 21, 18, 23, tzinfo=dt.UTC)
    assert values["upstream_updated_at"] == dt.datetime(2017, 3, 21, 18, 23, tzinfo=dt.UTC)
    assert values["extra"]["product_ids"] == [] and values["extra"]["limit_usage_to_x_items"] is None
    assert Coupons().external_id(load("woocommerce", "coupon")) == "719"
    assert Coupons().record_cursor(load("woocommerce", "coupon")) == "2017-03-21T18:23:00Z"


def test_mapper_over_the_published_list():
    by_code = {v["code"]: v for v in map(Coupons().map, load("woocommerce", "coupons_list"))}
    assert set(by_code) == {"free shipping", "10off"}
    free = by_code["free shipping"]
    assert free["discount_type"] == "fixed_cart" and free["amount"] == Decimal("0.00")
    assert free["free_shipping"] is True and free["minimum_amount"] is None and free["maximum_amount"] is None


def test_mapper_rejects_what_it_cannot_store():
    record = load("woocommerce", "coupon")
    with pytest.raises(MappingError, match="no code"):
        Coupons().map(dict(record, code=""))
    with pytest.raises(MappingError, match="amount"):
        Coupons().map(dict(record, amount="ten"))
    expiring = Coupons().map(dict(record, date_expires_gmt="2030-01-31T02:59:59"))
    assert expiring["expires_at"] == dt.datetime(2030, 1, 31, 2, 59, 59, tzinfo=dt.UTC)


def test_registered_from_the_resource_list():
    connector = get_connector("woocommerce")
    assert isinstance(connector.resource("coupons"), Coupons)
    assert connector.resource("coupons").model == "commerce.Coupon"


# --- the sandbox serves the published shape --------------------------------------------------------------
def test_sandbox_coupons_have_the_published_shape(make_sandbox):
    published = load("woocommerce", "coupon")
    sandbox, base = make_sandbox(size=60)
    served = requests.get(f"{base}/wp-json/wc/v3/coupons", params={"per_page": 100}, auth=AUTH, timeout=5).json()
    assert len(served) == len(sandbox.ids("coupons")) >= 2
    for coupon in served:
        assert list(coupon) == list(published)  # same keys, same order
        for key, value in coupon.items():
            if value is not None and published[key] is not None:
                assert type(value) is type(published[key]), key
    one = requests.get(f"{base}/wp-json/wc/v3/coupons/{served[0]['id']}", auth=AUTH, timeout=5).json()
    assert one == served[0]
    missing = requests.get(f"{base}/wp-json/wc/v3/coupons/99999", auth=AUTH, timeout=5)
    assert missing.status_code == 404 and missing.json()["code"] == "woocommerce_rest_shop_coupon_invalid_id"
    by_code = requests.get(
        f"{base}/wp-json/wc/v3/coupons", params={"code": served[0]["code"]}, auth=AUTH, timeout=5
    ).json()
    assert [c["id"] for c in by_code] == [served[0]["id"]]


def test_adding_coupons_left_the_other_sandbox_data_unchanged():
    """Coupons use their own random stream, so a seed's customers, orders and products did not move."""
    with_coupons, without = WooSandbox(seed=5, size=40), WooSandbox(seed=5, size=40, coupons=0)
    for resource in ("customers", "orders", "products"):
        assert with_coupons.data[resource] == without.data[resource]
    assert without.ids("coupons") == [] and len(with_coupons.ids("coupons")) == 4


# --- end to end through the engine against the sandbox ---------------------------------------------------
def test_coupons_sync_end_to_end_then_incremental(woo):
    sandbox, conn = woo(size=20, coupons=130)  # two pages of 100
    sandbox.app.record_requests = True
    first = _run(conn)
    assert first.state == QueueState.DONE and not first.action_required, first.last_error
    assert first.total_count == first.done_count == 130 and first.expected_total == 130
    rows = Coupon.objects.filter(connection=conn, organization=conn.organization)
    assert rows.count() == 130
    some = sandbox.data["coupons"][77]
    row = rows.get(external_id="77")
    assert (row.code, row.discount_type, row.amount) == (some["code"], some["discount_type"], Decimal(some["amount"]))
    status = SyncStatus.objects.get(connection=conn, resource="coupons")
    newest = max(c["date_modified_gmt"] for c in sandbox.data["coupons"].values())
    assert status.state == "success" and status.records_synced == 130 and status.cursor == newest + "Z"

    sandbox.update("coupons", 3, amount="42.00")
    sandbox.app.requests_seen.clear()
    second = _run(conn)
    asked = sandbox.app.requests_seen[0]
    assert asked.arg("modified_after") and asked.arg("dates_are_gmt") == "true" and asked.arg("orderby") == "id"
    assert second.state == QueueState.DONE and "3" in _fetched(second) and second.total_count < 20
    assert rows.get(external_id="3").amount == Decimal("42.00")


def test_full_scan_marks_missing_coupons_deleted(woo):
    sandbox, conn = woo(size=20, coupons=12)
    assert _run(conn).done_count == 12
    gone = sandbox.ids("coupons")[4]
    sandbox.delete("coupons", gone)
    incremental = _run(conn)
    assert incremental.state == QueueState.DONE
    assert not Coupon.objects.filter(deleted_at__isnull=False).exists()  # an incremental run proves nothing
    full = _run(conn, full_scan=True)
    assert full.state == QueueState.DONE and full.total_count == 11
    deleted = Coupon.objects.filter(connection=conn, deleted_at__isnull=False)
    assert list(deleted.values_list("external_id", flat=True)) == [str(gone)]
    assert Coupon.objects.filter(connection=conn).count() == 12  # marked, never hard-deleted


def test_the_published_payloads_sync_verbatim(woo):
    sandbox, conn = woo(size=5, coupons=0)
    sandbox.data["coupons"] = {c["id"]: copy.deepcopy(c) for c in load("woocommerce", "coupons_list")}
    queue = _run(conn)
    assert queue.state == QueueState.DONE and queue.done_count == 2
    assert dict(Coupon.objects.filter(connection=conn).values_list("external_id", "code")) == {
        "719": "10off",
        "720": "free shipping",
    }
    assert Coupon.objects.get(connection=conn, external_id="720").free_shipping is True


def test_a_coupon_without_code_fails_only_its_line(woo):
    sandbox, conn = woo(size=5, coupons=6)
    sandbox.data["coupons"][2]["code"] = ""
    queue = _run(conn)
    assert queue.state == QueueState.PARTIAL and queue.failed_count == 1 and queue.done_count == 5


# --- the generic trigger ---------------------------------------------------------------------------------
def test_generic_trigger_syncs_coupons(client, staff, woo):
    sandbox, conn = woo(size=5, coupons=9)
    client.force_login(staff)
    response = client.post(
        f"/api/connections/{conn.pk}/resources/coupons/sync", {"full_scan": True}, content_type="application/json"
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["resource"] == "coupons" and body["result"] == "created"
    assert response["Location"] == f"http://testserver/api/queues/{body['queue_id']}"
    run = client.get(response["Location"]).json()
    assert run["state"] == "done" and run["done_count"] == 9 and run["resource"] == "coupons"
    assert Coupon.objects.filter(connection=conn).count() == 9
    status = client.get(f"/api/connections/{conn.pk}/statuses/coupons").json()
    assert status["state"] == "success"
