"""Bad input on the connector and customer endpoints (mounted under /api/ next to the engine's): wrong types,
non-object bodies and out-of-range ids are a 4xx in the one error shape of docs/api.md, never a 500; and
the errors these views raise themselves use that shape too."""

from __future__ import annotations

import pytest

from .conftest import assert_error

HUGE = "9" * 25


@pytest.fixture
def anon_ok(api, org, make_connection):
    api.raise_request_exception = False  # a 500 must show up as a status to assert on, not as an exception
    make_connection(org, kind="mdm")  # the caller's organization owns the MDM export: it may operate it
    return api


@pytest.mark.parametrize(
    "method,url,body",
    [
        ("get", "/api/mulesoft/loyalty/status?organization=abc", None),
        ("get", f"/api/mulesoft/loyalty/status?organization=-{HUGE}", None),
        ("post", "/api/mulesoft/loyalty/refresh", {"organization": "abc"}),
        ("post", "/api/mulesoft/loyalty/refresh", [1, 2]),
        ("post", "/api/mulesoft/loyalty/refresh?organization=1.5", None),
        ("post", "/api/tiendanube/pending/1/claim/", {"organization": "abc"}),
        ("post", "/api/tiendanube/pending/1/claim/", [1, 2]),
        ("post", "/api/tiendanube/pending/1/claim/", {"organization": HUGE}),
        ("post", "/api/tiendanube/pending/1/claim/", {}),
        ("post", "/api/mdm/schedule", [1]),
        ("post", "/api/mdm/schedule", {"action": ["pause"]}),
        ("post", "/api/mdm/schedule", {"action": "nope"}),
        ("get", "/api/customers?organization=abc", None),
        ("get", f"/api/customers?organization={HUGE}", None),
        ("get", "/api/customers?organization=-3", None),
    ],
)
def test_bad_input_is_a_400_in_the_error_shape(anon_ok, method, url, body):
    if body is None:
        response = getattr(anon_ok, method)(url)
    else:
        response = getattr(anon_ok, method)(url, body, format="json")
    error = assert_error(response, 400)
    assert error["message"] and "Traceback" not in error["message"]


def test_lightspeed_trigger_errors_use_the_error_shape(api, org, make_connection):
    conn = make_connection(org, kind="lightspeed", needs_reauth=True)
    assert_error(api.post(f"/api/lightspeed/connections/{conn.pk}/customers/sync"), 409, "connection_unavailable")
    conn.needs_reauth = False
    conn.save()
    error = assert_error(api.post(f"/api/lightspeed/connections/{conn.pk}/nope/sync"), 404, "unknown_resource")
    assert "customers" in error["message"]  # says which resources exist


def test_tiendanube_store_sync_refusal_uses_the_error_shape(api, org, make_connection):
    store = make_connection(org, kind="tiendanube", needs_reauth=True, external_account_id="1001")
    error = assert_error(api.post(f"/api/tiendanube/stores/{store.pk}/sync/"), 409)
    assert "reconnect" in error["message"]


def test_mdm_items_unavailable_uses_the_error_shape(api, monkeypatch):
    from connectors.mdm import selectors
    from connectors.mdm.readcache import ItemsUnavailable

    def unavailable(**kwargs):
        raise ItemsUnavailable("S3 could not be read and no copy is loaded")

    monkeypatch.setattr(selectors, "ineligible_items", unavailable)
    error = assert_error(api.get("/api/mdm/items"), 503, "items_unavailable")
    assert "S3 could not be read" in error["message"]


def test_mulesoft_refresh_inside_a_rate_limit_window_is_a_429_with_retry_after(api, org, fake_clock):
    import datetime as dt

    from connectors.mulesoft.models import LoyaltyRefreshState
    from core import clock

    LoyaltyRefreshState.objects.create(organization=org, next_allowed_at=clock.now() + dt.timedelta(seconds=90))
    response = api.post("/api/mulesoft/loyalty/refresh")
    error = assert_error(response, 429, "upstream_rate_limited")
    assert int(response["Retry-After"]) == 90 and error["details"]["retry_after_seconds"] == 90
