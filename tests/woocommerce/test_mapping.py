"""The pure mappers: no DB, no HTTP."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from connectors.base import MappingError
from connectors.woocommerce.resources import Customers, Orders, Products
from connectors.woocommerce.sandbox import WooSandbox

SANDBOX = WooSandbox(seed=3, size=5, orders=3, products=3)


def test_customer_fields():
    record = dict(SANDBOX.data["customers"][SANDBOX.ids("customers")[0]], is_paying_customer=True)
    values = Customers().map(record)
    assert values["email"] == record["email"] and values["username"] == record["username"]
    assert values["first_name"] == record["first_name"] and values["last_name"] == record["last_name"]
    assert values["phone"] == record["billing"]["phone"]
    assert values["billing"]["city"] == "Montevideo" and "email" not in values["shipping"]
    assert values["is_paying_customer"] is True
    # *_gmt is UTC; the local fields (site at UTC-3) must not be used
    gmt = dt.datetime.fromisoformat(record["date_created_gmt"]).replace(tzinfo=dt.UTC)
    assert values["upstream_created_at"] == gmt
    assert values["upstream_updated_at"] == dt.datetime.fromisoformat(record["date_modified_gmt"]).replace(
        tzinfo=dt.UTC
    )
    assert values["extra"]["role"] == record["role"]


@pytest.mark.parametrize("email", ["", None, "   "])
def test_customer_without_email_is_rejected(email):
    record = {"id": 9, "email": email, "billing": {"email": ""}}
    with pytest.raises(MappingError, match="no email"):
        Customers().map(record)


def test_billing_email_does_not_stand_in_for_the_account_email():
    with pytest.raises(MappingError):
        Customers().map({"id": 9, "email": "", "billing": {"email": "b@x.test"}})


def test_order_fields():
    record = dict(SANDBOX.data["orders"][1], customer_id=0, total="12.50", date_paid_gmt="2024-02-01T10:00:00")
    values = Orders().map(record)
    assert values["total"] == Decimal("12.50") and values["customer_external_id"] == ""  # guest
    assert values["payment_status"] == "paid" and values["number"] == "1"
    assert values["line_items"][0]["product_id"] == record["line_items"][0]["product_id"]
    assert Orders().map(dict(record, customer_id=42))["customer_external_id"] == "42"
    with pytest.raises(MappingError):
        Orders().map(dict(record, total="twelve"))


def test_product_fields():
    record = dict(SANDBOX.data["products"][1], status="publish", price="9.90", sale_price="")
    values = Products().map(record)
    assert values["price"] == Decimal("9.90") and values["sale_price"] is None and values["active"] is True
    assert values["sku"] == record["sku"] and values["handle"] == record["slug"]
    assert Products().map(dict(record, status="draft"))["active"] is False


def test_server_time_reads_the_date_header_the_same_when_cached():
    """The store's Date header (RFC 9110 IMF-fixdate, as the example in RFC 9110 §5.6.7) as ISO UTC, the
    same on a second page carrying the same header (cached by its text); absent or garbled: None."""
    from connectors.woocommerce.resources import _server_time

    for _ in range(2):
        assert _server_time("Sun, 06 Nov 1994 08:49:37 GMT") == "1994-11-06T08:49:37Z"
        assert _server_time("Sun, 06 Nov 1994 10:49:37 +0200") == "1994-11-06T08:49:37Z"
        assert _server_time("not a date") is None
        assert _server_time(None) is None
