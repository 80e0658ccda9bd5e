"""Tiendanube's list pages over the vendor's published list examples (tests/fixtures/vendor/tiendanube, sources
in SOURCES.md): a page's records made again from its body (Page.reload), as a first sync asks for them once it
has let them go, or a fetch process's parent once the child sent the body instead of the records."""

from __future__ import annotations

import functools
import json
import marshal
import types

import pytest
import requests

from connectors.base import page_json
from connectors.tiendanube.resources import Customers, Orders, Products
from core.errors import ReloadMismatch
from core.paging import FetchContext
from sync.engine import _reload_checked, _travelling
from sync.services.lines import record_key
from tests.vendor_fixtures import load


def _page(resource, records, encoding="utf-8"):
    response = requests.Response()  # as the client receives it (its json() is what a non-UTF-8 body goes through)
    response._content = json.dumps(records, ensure_ascii=False).encode()
    response.encoding, response.status_code = encoding, 200
    response.url = "https://api.tiendanube.com/v1/123/x?page=1&per_page=200"
    response.headers["x-total-count"] = str(len(records))
    client = types.SimpleNamespace(get_page=lambda path, params: (page_json(response), response))
    return resource.fetch_page(FetchContext(client=client, cursor="", token=None, full_scan=True)), response


@pytest.mark.parametrize("encoding", ["utf-8", "ISO-8859-1"])  # the second is parsed by requests' json()
@pytest.mark.parametrize(
    ("resource", "fixture"),
    [(Customers(), "customers_list"), (Orders(), "orders_list"), (Products(), "products_list")],
)
def test_a_published_list_page_makes_its_records_again_from_its_body(resource, fixture, encoding):
    published = load("tiendanube", fixture)
    page, response = _page(resource, published, encoding)
    assert len(page.records) == len(published) >= 1
    ids = [record_key(resource, r).external_id for r in page.records]
    again = _reload_checked(page.reload, resource, ids)
    assert again == page.records and again[0] is not page.records[0]
    # It travels as the body's bytes, encoding and path (never the query): a fetch process's parent calls the
    # method of that name on its own resource over what the pipe brought.
    name, args = _travelling(page.reload, resource)
    assert (name, args) == ("_reloaded", (response.content, encoding, "/v1/123/x"))
    parent = type(resource)()
    assert (
        _reload_checked(functools.partial(getattr(parent, name), *marshal.loads(marshal.dumps(args))), parent, ids)
        == page.records
    )


def test_a_body_that_no_longer_holds_its_records_is_refused():
    published = load("tiendanube", "customers_list")
    resource = Customers()
    page, _ = _page(resource, published)
    ids = [record_key(resource, r).external_id for r in page.records]
    other, _ = _page(resource, [{**published[0], "id": 999999999}, *published[1:]])
    with pytest.raises(ReloadMismatch, match="holds other records"):
        _reload_checked(other.reload, resource, ids)
    with pytest.raises(ReloadMismatch, match="parsed again"):
        resource._reloaded(b'{"not": "a list"}', "utf-8", "/v1/123/x")
