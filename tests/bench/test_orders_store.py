"""bench.upstream.order against the REST docs' example order (tests/fixtures/vendor/woocommerce/order.json,
woocommerce-rest-api-docs wp-api-v3/_orders.md "Retrieve an order"), and bench.prerendered serving a store of
them on the connector's orders query (bench/orders.py)."""

from __future__ import annotations

import json
import threading
import urllib.request

from bench.prerendered import KEY, SECRET, make_server
from bench.upstream import order
from connectors.woocommerce.resources import Orders
from tests.vendor_fixtures import load


def _shape(value):
    """Keys in order and kinds of value, lists by their first item (a number is a number, int or float)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return type(value).__name__
    return "number"


def test_a_generated_order_has_the_example_orders_shape_and_maps_like_it():
    example = load("woocommerce", "order")
    shapes = [_shape(order(i)) for i in range(1, 9)]
    for shape in shapes:
        assert list(shape) == list(_shape(example))  # every top-level key, in the docs' order
        assert shape["line_items"][0].keys() == _shape(example)["line_items"][0].keys()
        assert shape["billing"] == _shape(example)["billing"] and shape["shipping"] == _shape(example)["shipping"]
    assert {len(order(i)["line_items"]) for i in range(1, 9)} == {1, 2, 3, 4}
    for i in range(1, 9):  # amounts add up as WooCommerce's do
        o = order(i)
        items = sum(float(x["total"]) for x in o["line_items"])
        assert abs(items + float(o["total_tax"]) + float(o["shipping_total"]) - float(o["total"])) < 0.011
        mapped = Orders().map(o)
        assert mapped["number"] == str(i) and len(mapped["line_items"]) == len(o["line_items"])


def test_the_prerendered_upstream_serves_orders_on_the_connectors_query():
    server, stores = make_server()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        root = f"http://127.0.0.1:{server.server_address[1]}/n250/d0/wp-json/wc/v3"
        query = f"consumer_key={KEY}&consumer_secret={SECRET}&per_page=100&orderby=id&order=asc&dates_are_gmt=true"
        with urllib.request.urlopen(f"{root}/orders?{query}&offset=95") as response:
            body = json.loads(response.read())
            assert response.headers["X-WP-Total"] == "250"
        assert [o["id"] for o in body] == list(range(96, 196))
        assert body[0] == order(96)
        with urllib.request.urlopen(f"{root}/customers?{query}&offset=0") as response:
            assert json.loads(response.read())[0]["email"] == "customer1@example.com"  # the same n, its own store
        assert {kind for (_, _, kind) in stores.stores} == {"orders", "customers"}
    finally:
        server.shutdown()
