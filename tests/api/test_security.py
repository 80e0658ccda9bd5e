"""Issue 17 at the API edge: 401 with WWW-Authenticate on every route for missing or bad credentials,
another organization's id is 404, bodies are bounded in size and depth (400/413 in the one error shape),
no HTML from any /api/ route whatever DEBUG says, and token clients are throttled."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from .conftest import assert_error
from .test_every_route_bad_input import _routes, _url
from .test_every_route_bad_input import objects as objects


def _methods(pattern) -> list[str]:
    view = getattr(pattern.callback, "view_class", None)
    return [m for m in ("get", "post") if view is None or hasattr(view, m)]


@pytest.mark.parametrize("authorization", [None, "Token not-a-real-token", "Token ", "Bearer abc", "Token a b"])
def test_every_api_route_answers_401_with_www_authenticate(objects, authorization):
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    seen = 0
    for route, pattern in _routes():
        url = _url(route, pattern, objects)
        for method in _methods(pattern):
            r = getattr(client, method)(url, {}, format="json") if method == "post" else client.get(url)
            what = f"{method.upper()} {url} with {authorization!r}"
            assert r.status_code == 401, (what, r.status_code, r.content[:200])
            assert r["WWW-Authenticate"] == "Token", what
            assert_error(r, 401)
            seen += 1
    assert seen > 25


def test_connector_and_customer_routes_named_in_the_issue_answer_401(objects):
    client = APIClient()
    for url in (
        "/api/customers",
        "/api/mdm/items",
        "/api/tiendanube/scheduler/status/",
        "/api/mulesoft/loyalty/status",
    ):
        r = client.get(url)
        assert r.status_code == 401 and r["WWW-Authenticate"] == "Token", url
    lightspeed = f"/api/lightspeed/connections/{objects['api/lightspeed/connections/']}/customers/sync"
    assert client.post(lightspeed).status_code == 401


@pytest.mark.parametrize(
    "url",
    ["/api/customers", "/api/mulesoft/loyalty/status"],
)
def test_another_organizations_id_is_404(api, other_org, url):
    r = api.get(url, {"organization": other_org.pk})
    assert_error(r, 404)


def test_another_organizations_objects_are_404_on_connector_routes(api, other_org, make_connection):
    theirs = make_connection(other_org, kind="tiendanube", external_account_id="7777")
    assert_error(api.get(f"/api/tiendanube/stores/{theirs.pk}/token/"), 404)
    woo = make_connection(other_org, kind="woocommerce")
    assert_error(api.get(f"/api/woocommerce/connections/{woo.pk}/webhook/"), 404)


def test_deeply_nested_json_is_400_too_deep(api, fake_conn, settings):
    settings.JSON_MAX_DEPTH = 10
    url = f"/api/connections/{fake_conn.pk}/resources/customers/sync"
    nested = {"params": {"a": json.loads("[" * 12 + "]" * 12)}}
    assert_error(api.post(url, data=json.dumps(nested), content_type="application/json"), 400, "too_deep")
    # Far past the interpreter's recursion limit: still a 400, never a RecursionError.
    deep = "[" * 200_000 + "]" * 200_000
    assert_error(api.post(url, data=deep, content_type="application/json"), 400, "too_deep")


def test_body_over_the_limit_is_413_before_any_view(api, fake_conn, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    url = f"/api/connections/{fake_conn.pk}/resources/customers/sync"
    body = json.dumps({"params": {"x": "y" * 2000}})
    assert_error(api.post(url, data=body, content_type="application/json"), 413, "payload_too_large")


def test_long_query_string_is_400(api, settings):
    settings.QUERY_STRING_MAX_BYTES = 100
    assert_error(api.get("/api/queues", {"state": "x" * 200}), 400, "bad_request")


def test_oauth_callbacks_bound_their_query_string(client, settings):
    settings.QUERY_STRING_MAX_BYTES = 100
    for url in ("/connectors/lightspeed/oauth/callback/", "/connectors/tiendanube/oauth/callback/"):
        r = client.get(url, {"state": "s" * 200, "code": "c"})
        assert r.status_code == 400, url


def test_form_and_multipart_bodies_are_415(api, fake_conn):
    url = f"/api/connections/{fake_conn.pk}/resources/customers/sync"
    assert_error(api.post(url, data="full_scan=true", content_type="application/x-www-form-urlencoded"), 415)
    assert_error(api.post(url, {"full_scan": "true"}, format="multipart"), 415)


@pytest.mark.parametrize("debug", [False, True])
def test_no_html_from_api_routes_in_any_setting(settings, debug, api):
    settings.DEBUG = debug
    settings.ROOT_URLCONF = "tests.api.crash_urls"
    client = Client(raise_request_exception=False)
    assert_error(client.get("/api/no-such-route"), 404)
    crash = client.get("/api/__crash")
    assert_error(crash, 500, "server_error")
    assert b"boom" not in crash.content and b"Traceback" not in crash.content
    assert_error(api.put("/api/queues", {}, format="json"), 405)
    csrf = Client(enforce_csrf_checks=True)
    assert csrf.post("/api/queues/1/retry")["Content-Type"] == "application/json"
    # The rest of the site keeps Django's own pages.
    assert not client.get("/plain/__crash")["Content-Type"].startswith("application/json")


def test_token_clients_are_throttled_per_user(api, other_api, settings, fake_conn):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "api-user": "3/min"},
    }
    answers = [api.get("/api/queues").status_code for _ in range(3)]
    assert answers == [200, 200, 200]
    throttled = api.get("/api/connections")
    err = assert_error(throttled, 429, "throttled")
    assert int(throttled["Retry-After"]) > 0 and err["details"]["retry_after_seconds"] > 0
    assert other_api.get("/api/queues").status_code == 200  # per user, not global
