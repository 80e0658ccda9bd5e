"""Lightspeed X-Series resources over Lightspeed's own published examples (tests/fixtures/vendor/lightspeed,
sources in its SOURCES.md), not over our sandbox's idea of the API."""

from __future__ import annotations

import types

import pytest

from connectors.base import BadPage, FetchContext
from connectors.lightspeed.resources import CustomerGroups, Customers, Products
from tests.vendor_fixtures import load


def page_of(resource, body, *, after=""):
    client = types.SimpleNamespace(get_json=lambda path, params=None: (body, None))
    return resource.fetch_page(FetchContext(client=client, cursor=after, token=None, full_scan=not after))


@pytest.mark.parametrize(
    ("resource", "fixture"),
    [(Customers(), "customers_list"), (Products(), "products_list"), (CustomerGroups(), "customer_groups_list")],
)
def test_it_pages_and_maps_every_published_list_example(resource, fixture):
    body = load("lightspeed", fixture)
    page = page_of(resource, body)
    records = body["data"]
    assert page.records == records
    versions = [int(r["version"]) for r in records]
    # The next page asks after the page's highest version: from the published range, or (customers, whose
    # published example omits the range) from the records' own versions.
    expected = body["version"]["max"] if isinstance(body.get("version"), dict) else max(versions)
    assert page.next_token == str(expected) and page.cursor == str(expected)
    for record in records:
        values = resource.map(record)
        assert resource.external_id(record) == record["id"]
        assert not resource.is_deleted(record)
        assert values["upstream_updated_at"] is not None


def test_the_published_customer_maps_field_by_field():
    record = load("lightspeed", "customers_list")["data"][0]
    values = Customers().map(record)
    assert (values["first_name"], values["last_name"], values["email"]) == ("Anthony", "Stark", "tony@stark.com")
    assert values["customer_code"] == "Tony-N4ZJ" and values["company"] == "Stark Industries Inc"
    assert str(values["loyalty_balance"]) == "5809.64"
    assert values["upstream_updated_at"].isoformat() == "2017-01-19T16:49:35+00:00"


def test_a_page_without_a_range_whose_records_carry_no_version_is_refused():
    body = {"data": [{"id": "a", "name": "no version here"}]}
    with pytest.raises(BadPage, match="record version"):
        page_of(Customers(), body)
