"""Every route under /api/ and /connectors/ (the connectors' included, not only sync.api.urls) takes ids
through the bounded ``<sync_id:...>`` converter, as docs/api.md asks: an id that is too long, negative or
zero-padded matches no route and is the JSON 404, never a value handed to the view and the database."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.converters import IntConverter

from .conftest import assert_error

HUGE = "9" * 25


def _patterns(resolver=None, prefix=""):
    for entry in (resolver or get_resolver()).url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _patterns(entry, route)
        elif isinstance(entry, URLPattern):
            yield route, entry.pattern.converters


def test_no_api_or_connector_route_uses_the_unbounded_int_converter():
    routes = [(r, c) for r, c in _patterns() if r.startswith(("api/", "connectors/"))]
    assert any(r.startswith("api/lightspeed/") for r, _ in routes)  # the walk reaches the connector includes
    unbounded = [r for r, convs in routes if any(isinstance(c, IntConverter) for c in convs.values())]
    assert unbounded == []


@pytest.mark.parametrize(
    "method,url",
    [
        ("post", f"/api/lightspeed/connections/{HUGE}/customers/sync"),
        ("get", f"/api/lightspeed/runs/{HUGE}"),
        ("get", "/api/lightspeed/runs/007"),
        ("post", f"/api/tiendanube/stores/{HUGE}/sync/"),
        ("get", f"/api/tiendanube/stores/{HUGE}/token/"),
        ("post", f"/api/tiendanube/pending/{HUGE}/claim/"),
        ("get", f"/api/mdm/exports/{HUGE}"),
        ("get", f"/api/woocommerce/connections/{HUGE}/webhook/"),
    ],
)
def test_huge_or_padded_ids_are_a_json_404(api, method, url):
    assert_error(getattr(api, method)(url), 404, "not_found")
