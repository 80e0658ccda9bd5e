"""Lightspeed X-Series resources over Lightspeed's own published examples (tests/fixtures/vendor/lightspeed,
sources in its SOURCES.md), not over our sandbox's idea of the API."""

from __future__ import annotations

import functools
import marshal
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


def _served(resource, body):
    """A page of ``resource`` from ``body`` as served (its bytes in a response the client parses), and that
    response."""
    import json

    from connectors.base import page_json

    response = types.SimpleNamespace(
        content=json.dumps(body).encode(),
        encoding="utf-8",
        url="https://shop.retail.lightspeed.app/api/2.0/x?after=1&page_size=2",
        headers={"Content-Type": "application/json"},
    )
    client = types.SimpleNamespace(get_json=lambda path, params=None: (page_json(response), response))
    return resource.fetch_page(FetchContext(client=client, cursor="", token=None, full_scan=True)), response


@pytest.mark.parametrize(
    ("resource", "fixture"),
    [(Customers(), "customers_list"), (Products(), "products_list"), (CustomerGroups(), "customer_groups_list")],
)
def test_a_published_list_page_makes_its_records_again_from_its_body(resource, fixture):
    """Page.reload (a first sync lets a page's records go once their rows are encoded, and a fetch process sends
    the body instead of the records): the vendor's list body parsed again gives the same records, new objects,
    checked as the engine checks them; it travels as the body's bytes, encoding and path, never the query."""
    from core.errors import ReloadMismatch
    from sync.engine import _reload_checked, _travelling
    from sync.services.lines import record_key

    body = load("lightspeed", fixture)
    page, response = _served(resource, body)
    ids = [record_key(resource, r).external_id for r in page.records]
    again = _reload_checked(page.reload, resource, ids)
    assert again == body["data"] and again[0] is not page.records[0] and len(again) >= 2
    name, args = _travelling(page.reload, resource)
    assert (name, args) == ("_reloaded", (response.content, "utf-8", "/api/2.0/x"))
    # A fetch process's parent calls the method of that name on its own resource over what the pipe brought.
    parent = type(resource)()
    assert (
        _reload_checked(functools.partial(getattr(parent, name), *marshal.loads(marshal.dumps(args))), parent, ids)
        == body["data"]
    )
    reversed_page, _ = _served(resource, {**body, "data": body["data"][::-1]})
    with pytest.raises(ReloadMismatch, match="holds other records"):
        _reload_checked(reversed_page.reload, resource, ids)
    with pytest.raises(ReloadMismatch, match="parsed again"):
        resource._reloaded(b"[]", "utf-8", "/api/2.0/x")
