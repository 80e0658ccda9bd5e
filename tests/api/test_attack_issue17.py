"""Issue 17 re-attack at the API edge: every /api/ route with every method, without credentials or with the
wrong scheme, answers 401 + WWW-Authenticate in the one error shape (not only GET/POST); an idempotent replay
is byte for byte the first response; a view that raises under /api/ or a webhook route is JSON in any DEBUG."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import path
from rest_framework.test import APIClient

from .conftest import assert_error
from .test_every_route_bad_input import _routes, _url
from .test_every_route_bad_input import objects as objects

PUBLIC = ("api/schema/", "api/docs/")  # the OpenAPI document and its viewer are public on purpose


@pytest.mark.parametrize("authorization", [None, "Basic c3RhZmY6cGFzcw==", "token x", "Token " + "A" * 5000])
def test_every_route_every_method_is_401(objects, authorization):
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    seen = 0
    for route, pattern in _routes():
        url = _url(route, pattern, objects)
        if url.lstrip("/").startswith(PUBLIC):
            continue
        for method in ("get", "post", "put", "patch", "delete", "options"):
            r = getattr(client, method)(url)
            what = f"{method.upper()} {url} with {str(authorization)[:20]!r}"
            assert r.status_code == 401, (what, r.status_code, r.content[:200])
            assert r["WWW-Authenticate"] == "Token", what
            assert_error(r, 401)
            seen += 1
    assert seen > 100


def test_idempotent_replay_is_byte_for_byte(api, fake_conn, fake_kind):
    url = f"/api/connections/{fake_conn.pk}/resources/customers/sync"
    first = api.post(url, {"full_scan": False}, format="json", HTTP_IDEMPOTENCY_KEY="attack-1")
    for _ in range(3):
        again = api.post(url, {"full_scan": False}, format="json", HTTP_IDEMPOTENCY_KEY="attack-1")
        assert (again.status_code, again.content, again["Location"]) == (
            first.status_code,
            first.content,
            first["Location"],
        )
        assert again["Idempotent-Replayed"] == "true"
    other = api.post(url, {"full_scan": True}, format="json", HTTP_IDEMPOTENCY_KEY="attack-1")
    assert other.status_code in (409, 422) and other.content != first.content  # same key, other body


def _boom(request, **kwargs):
    raise RuntimeError("boom secret-looking detail")


urlpatterns = [
    path("connectors/woocommerce/webhooks/__crash/", _boom),
    path("connectors/mulesoft/push/__crash/", _boom),
    path("api/__crash/", _boom),
]


@pytest.mark.parametrize("debug", [False, True])
def test_a_view_that_raises_is_json_in_any_debug(settings, debug):
    from config import urls

    settings.ROOT_URLCONF = __name__
    urlpatterns[3:] = urls.urlpatterns
    settings.DEBUG = debug
    client = Client(raise_request_exception=False)
    for url in ("/api/__crash/", "/connectors/woocommerce/webhooks/__crash/", "/connectors/mulesoft/push/__crash/"):
        r = client.post(url, b"{}", content_type="application/json")
        assert r.status_code == 500 and r["Content-Type"] == "application/json", (url, r["Content-Type"])
        assert b"boom" not in r.content and b"Traceback" not in r.content
