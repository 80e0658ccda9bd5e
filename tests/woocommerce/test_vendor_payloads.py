"""The WooCommerce mappers over the vendor's own published example responses
(tests/fixtures/vendor/woocommerce/, copied from woocommerce-rest-api-docs; see SOURCES.md there), not over
payloads our sandbox generates. Each record is asserted on what a person reading the example would expect."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from connectors.woocommerce.resources import Customers, Orders, Products
from tests.vendor_fixtures import load

UTC = dt.UTC


def _by_id(name: str) -> dict[int, dict]:
    data = load("woocommerce", name)
    return {r["id"]: r for r in (data if isinstance(data, list) else [data])}


@pytest.mark.parametrize(
    "resource,fixtures",
    [
        (Customers(), ("customer", "customers_list")),
        (Orders(), ("order", "orders_list")),
        (Products(), ("product", "products_list")),
    ],
)
def test_every_published_record_maps_and_keys(resource, fixtures):
    for name in fixtures:
        for record in _by_id(name).values():
            values = resource.map(record)  # no MappingError on the vendor's own examples
            assert resource.external_id(record) == str(record["id"])
            assert values["upstream_created_at"] is not None and values["upstream_created_at"].tzinfo is not None


def test_single_and_list_examples_agree():
    """The "retrieve" example is the same record as its entry in the "list" example."""
    for single, listed, resource in (
        ("customer", "customers_list", Customers()),
        ("order", "orders_list", Orders()),
        ("product", "products_list", Products()),
    ):
        record = load("woocommerce", single)
        assert resource.map(record) == resource.map(_by_id(listed)[record["id"]])


def test_customers():
    john = Customers().map(load("woocommerce", "customer"))
    assert (john["email"], john["first_name"], john["last_name"]) == ("john.doe@example.com", "John", "Doe")
    assert john["username"] == "john.doe" and john["phone"] == "(555) 555-5555"
    assert john["billing"]["city"] == "San Francisco" and john["shipping"]["country"] == "US"
    assert john["is_paying_customer"] is False and john["extra"]["role"] == "customer"
    # the _gmt fields are UTC: 16:09:28 local at UTC-3 is 19:09:28 UTC
    assert john["upstream_created_at"] == dt.datetime(2017, 3, 21, 19, 9, 28, tzinfo=UTC)
    assert john["upstream_updated_at"] == dt.datetime(2017, 3, 21, 19, 9, 30, tzinfo=UTC)
    joao = Customers().map(_by_id("customers_list")[26])
    assert joao["first_name"] == "João" and joao["email"] == "joao.silva@example.com"


def test_orders():
    orders = _by_id("orders_list")
    o727 = Orders().map(orders[727])
    assert (o727["number"], o727["status"], o727["currency"]) == ("727", "processing", "USD")
    assert o727["total"] == Decimal("29.35") and o727["payment_status"] == "paid"
    assert o727["customer_external_id"] == ""  # customer_id 0: a guest checkout
    assert o727["email"] == "john.doe@example.com"
    assert [(i["product_id"], i["quantity"]) for i in o727["line_items"]] == [(93, 2), (22, 1)]
    assert o727["upstream_updated_at"] == dt.datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC)
    o723 = Orders().map(orders[723])
    assert orders[723]["status"] == "completed" and orders[723]["date_paid"] is None
    # Finding: a completed order is paid (WC_Order::is_paid) although the example has no date_paid; the
    # mapper used to look only at date_paid and called it "unpaid".
    assert o723["payment_status"] == "paid"
    assert o723["customer_external_id"] == "26" and o723["total"] == Decimal("39.00")


def test_payment_status_rule():
    record = load("woocommerce", "order")
    unpaid = {**record, "date_paid": None, "date_paid_gmt": None}
    assert Orders().map({**unpaid, "status": "pending"})["payment_status"] == "unpaid"
    assert Orders().map({**unpaid, "status": "on-hold"})["payment_status"] == "unpaid"
    assert Orders().map({**unpaid, "status": "completed"})["payment_status"] == "paid"
    assert Orders().map({**record, "status": "refunded"})["payment_status"] == "paid"  # it was paid (date_paid)


def test_products():
    p794 = Products().map(load("woocommerce", "product"))
    assert p794["name"] == "Premium Quality" and p794["handle"] == "premium-quality-19"
    assert p794["price"] == p794["regular_price"] == Decimal("21.99") and p794["sale_price"] is None
    assert p794["active"] is True and p794["status"] == "publish" and p794["sku"] == ""
    assert p794["stock_quantity"] is None and p794["extra"]["type"] == "simple"
    variable = _by_id("products_list")[799]
    assert variable["type"] == "variable" and variable["price"] == ""
    p799 = Products().map(variable)
    # A variable product has no price of its own (its variations do): "" maps to None, not 0.
    assert p799["price"] is None and p799["regular_price"] is None and p799["extra"]["type"] == "variable"


@pytest.mark.parametrize(
    "resource,fixture",
    [(Customers(), "customers_list"), (Orders(), "orders_list"), (Products(), "products_list")],
)
def test_a_published_list_body_pages_and_makes_its_records_again(resource, fixture):
    """The vendor's list response as the body of a page (step), and that page's records made again from it
    (Page.reload, which a first sync uses once it has let them go), checked as the engine checks them."""
    import types

    from core.paging import FetchContext
    from sync.engine import _reload_checked
    from sync.services.lines import record_key

    # The documentation lists newest first; the connector asks for ``orderby=id&order=asc``, which gives the
    # same records the other way round.
    published = sorted(load("woocommerce", fixture), key=lambda r: r["id"])
    response = types.SimpleNamespace(
        content=json.dumps(published).encode(),
        headers={"Content-Type": "application/json; charset=UTF-8", "X-WP-Total": "2"},
        encoding="UTF-8",
        url="http://127.0.0.1/wp-json/wc/v3/x",
    )
    client = types.SimpleNamespace(request=lambda *a, **kw: response)
    page = resource.step(FetchContext(client=client, cursor="", token=None, full_scan=True), None)
    assert page.records == published and len(published) >= 2
    ids = [record_key(resource, r).external_id for r in page.records]
    again = _reload_checked(page.reload, resource, ids)
    assert again == published and again[0] is not page.records[0]
