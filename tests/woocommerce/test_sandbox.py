"""The sandbox speaks the real dialect (upstream-apis.md §1), over real HTTP."""

from __future__ import annotations

import datetime as dt

import requests

AUTH = ("ck_sandbox", "cs_sandbox")


def get(base, path, auth=AUTH, **params):
    return requests.get(f"{base}/wp-json/wc/v3/{path}", params=params, auth=auth, timeout=5)


def test_paging_headers_and_links(make_sandbox):
    sandbox, base = make_sandbox(size=25)
    r = get(base, "customers", role="all", per_page=10, page=2)
    assert r.status_code == 200 and len(r.json()) == 10
    assert r.headers["X-WP-Total"] == "25" and r.headers["X-WP-TotalPages"] == "3"
    assert 'rel="prev"' in r.headers["Link"] and 'rel="next"' in r.headers["Link"]
    assert "first" not in r.headers["Link"] and "last" not in r.headers["Link"]
    assert get(base, "customers", role="all", per_page=10, page=9).json() == []


def test_per_page_above_100_is_invalid(make_sandbox):
    _, base = make_sandbox(size=3)
    r = get(base, "customers", per_page=101)
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "rest_invalid_param" and "per_page" in body["data"]["params"]


def test_role_defaults_to_customer_and_unknown_params_are_ignored(make_sandbox):
    sandbox, base = make_sandbox(size=60)
    everyone = len(sandbox.ids("customers"))
    only_customers = sum(1 for c in sandbox.data["customers"].values() if c["role"] == "customer")
    assert only_customers < everyone
    assert int(get(base, "customers", per_page=1).headers["X-WP-Total"]) == only_customers
    # customers have no date filter: modified_after is ignored silently
    r = get(base, "customers", role="all", per_page=1, modified_after="2100-01-01T00:00:00", bogus="1")
    assert int(r.headers["X-WP-Total"]) == everyone


def test_bad_key_and_bad_secret(make_sandbox):
    _, base = make_sandbox(size=3)
    r = get(base, "customers", auth=("ck_nope", "cs_sandbox"))
    assert r.status_code == 401 and r.json()["code"] == "woocommerce_rest_cannot_view"
    r = get(base, "customers", auth=("ck_sandbox", "wrong"))
    assert r.status_code == 401 and r.json()["code"] == "woocommerce_rest_authentication_error"
    r = get(base, "customers", auth=None, consumer_key="ck_sandbox", consumer_secret="cs_sandbox")
    assert r.status_code == 200


def test_modified_after_on_orders_with_gmt(make_sandbox):
    sandbox, base = make_sandbox(size=10, orders=40)
    stamps = sorted(o["date_modified_gmt"] for o in sandbox.data["orders"].values())
    # one second before a record's stamp: by GMT that record is after the bound, by site time (UTC-3) not
    middle = (dt.datetime.fromisoformat(stamps[20]) - dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    r = get(base, "orders", per_page=100, modified_after=middle, dates_are_gmt="true", orderby="modified", order="asc")
    got = [o["date_modified_gmt"] for o in r.json()]
    assert got == sorted(got) and all(s > middle for s in got) and len(got) == sum(1 for s in stamps if s > middle)
    # without dates_are_gmt the bound is site-local time (UTC-3), so a different set comes back
    local = get(base, "orders", per_page=100, modified_after=middle, orderby="modified", order="asc").json()
    assert len(local) == sum(1 for o in sandbox.data["orders"].values() if o["date_modified"] > middle) < len(got)


def test_unknown_route_and_missing_record(make_sandbox):
    _, base = make_sandbox(size=3)
    assert get(base, "no-such-collection").json()["code"] == "rest_no_route"
    r = get(base, "orders/99999")
    assert r.status_code == 404 and r.json()["code"] == "woocommerce_rest_shop_order_invalid_id"


def test_faults(make_sandbox):
    sandbox, base = make_sandbox(size=3)
    sandbox.faults.rate_limit_next = 1
    sandbox.faults.retry_after = "4"
    r = get(base, "customers")
    assert r.status_code == 429 and r.headers["Retry-After"] == "4"
    sandbox.faults.fail_next = [503]
    assert get(base, "customers").status_code == 503
    sandbox.faults.html_pages = {1}
    r = get(base, "customers", page=1)
    assert r.status_code == 200 and "html" in r.headers["Content-Type"]


def test_data_is_deterministic():
    from connectors.woocommerce.sandbox import WooSandbox

    a, b = WooSandbox(seed=5, size=20), WooSandbox(seed=5, size=20)
    assert a.data == b.data
    assert WooSandbox(seed=6, size=20).data != a.data
