"""Every route under /api/ (the engine's, the customers' and every connector's, enumerated from the URL
resolver so a new route is covered without editing this file) gets garbage: wrong-typed query values, a JSON
array body, wrong-typed fields, malformed JSON, for each method its view has. None may answer 5xx except the
two documented 503s, and every 4xx is the one error shape of docs/api.md."""

from __future__ import annotations

import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from sync import services

from .conftest import SECRET, assert_error

SKIP = {"api/schema/", "api/docs/"}  # drf-spectacular's own views
# Documented 503s: a health report whose checks failed (a report body, not an error), items not loadable.
REPORT_503 = {"api/tiendanube/health/"}
ERROR_503 = {"api/mdm/items"}

GARBAGE_QUERY = {
    "organization": "abc",
    "page": "abc",
    "page_size": "-1",
    "fresh": "abc",
    "full_scan": "abc",
    "sku": "\x00",
    "state": "\x00",
    "connection": "abc",
    "search": "\x00",
    "action_required": "maybe",
}
GARBAGE_BODIES = [
    ("application/json", json.dumps([1, 2])),
    ("application/json", json.dumps({"organization": "abc", "action": ["x"], "full_scan": "yes", "params": "x"})),
    ("application/json", "{not json"),
    ("application/json", json.dumps({"organization": 10**30})),
]


def _routes(resolver=None, prefix=""):
    for entry in (resolver or get_resolver()).url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _routes(entry, route)
        elif isinstance(entry, URLPattern) and route.startswith("api/") and route not in SKIP:
            yield route, entry


@pytest.fixture
def objects(org, fake_conn, make_connection, fake_kind):
    """One object of the caller's organization for every kind of id a route can take."""
    from connectors.mdm.models import ExportRun
    from connectors.tiendanube.models import PendingInstall

    fake_kind.records = [fake_kind.make(1)]
    make_connection(org, kind="mdm")  # the caller's organization owns the MDM export, so it gets past the 403
    queue = services.sync_start(connection=fake_conn, resource="customers").queue
    return {
        "api/connections/": fake_conn.pk,
        "api/queues/": queue.pk,
        "api/lightspeed/connections/": make_connection(org, kind="lightspeed", credentials={"access_token": SECRET}).pk,
        "api/lightspeed/runs/": queue.pk,
        "api/tiendanube/stores/": make_connection(
            org, kind="tiendanube", external_account_id="1001", credentials={"access_token": SECRET}
        ).pk,
        "api/tiendanube/pending/": PendingInstall.objects.create(store_id="9001").pk,
        "api/mdm/exports/": ExportRun.objects.create(organization=org).pk,
        "api/woocommerce/connections/": make_connection(org, kind="woocommerce").pk,
    }


def _url(route: str, pattern: URLPattern, objects: dict) -> str:
    kwargs = {}
    for name in pattern.pattern.converters:
        if name == "resource":
            kwargs[name] = "customers"
        else:
            kwargs[name] = next(pk for prefix, pk in objects.items() if route.startswith(prefix))
    url = "/" + route
    for name, value in kwargs.items():
        for conv in ("sync_id", "sync_resource", "int", "slug", "str"):
            url = url.replace(f"<{conv}:{name}>", str(value))
    return url


def _check(response, route: str, what: str) -> None:
    status = response.status_code
    assert status < 500 or (status == 503 and route in REPORT_503 | ERROR_503), (what, status, response.content[:300])
    if status >= 400 and route not in REPORT_503:
        assert_error(response, status)
    assert SECRET.encode() not in response.content, what


def test_every_api_route_survives_garbage(api, objects, settings, fake_clock):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"sync-trigger": "100000/min"}}
    api.raise_request_exception = False  # a crash must show up as a 500 to assert on
    checked = set()
    for route, pattern in _routes():
        url = _url(route, pattern, objects)
        view = getattr(pattern.callback, "view_class", None)
        methods = [m for m in ("get", "post") if view is None or hasattr(view, m)]
        for method in methods:
            if method == "get":
                _check(api.get(url, GARBAGE_QUERY), route, f"GET {url}")
            else:
                for content_type, body in GARBAGE_BODIES:
                    r = api.post(url + "?organization=abc", data=body, content_type=content_type)
                    _check(r, route, f"POST {url}?organization=abc {body[:40]}")
                    r = api.post(url, data=body, content_type=content_type)
                    _check(r, route, f"POST {url} {body[:40]}")
            checked.add(route)
    # The walk really reached the engine's, the customers' and every connector's routes.
    for prefix in (
        "api/connections",
        "api/queues",
        "api/customers",
        "api/lightspeed/",
        "api/tiendanube/",
        "api/mdm/",
        "api/mulesoft/",
        "api/woocommerce/",
    ):
        assert any(r.startswith(prefix) for r in checked), prefix
