"""The benchmark harness's honesty: its upstream is the real Woo sandbox (auth, dialect), the engine runs
the real WooCommerce connector against it, and the reference asks for exactly the pages the connector asks
for and writes the same rows. (No timings here: benchmarks are never assertions.)"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest
import requests

from bench import reference
from bench.upstream import customer
from bench.woo_upstream import KEY, SECRET, GeneratedWooSandbox, Stores, base_url
from connectors.base import FetchContext
from connectors.sandbox.server import serve
from connectors.woocommerce.client import WooClient
from connectors.woocommerce.resources import Customers
from customers.models import Customer
from sync.engine import run_queue
from sync.services import sync_start

AUTH = {"consumer_key": KEY, "consumer_secret": SECRET}
QUERY = {"role": "all", "orderby": "id", "order": "asc", "per_page": 100}


@pytest.fixture
def stores():
    with serve(Stores().app()) as root:
        yield root


@pytest.fixture
def recorded():
    """Generated stores served on their own, each recording every request it gets."""
    running = []

    def make(n: int):
        sandbox = GeneratedWooSandbox(n)
        sandbox.app.record_requests = True
        ctx = serve(sandbox.app)
        running.append(ctx)
        return sandbox, ctx.__enter__()

    yield make
    for ctx in running:
        ctx.__exit__(None, None, None)


def _get(root: str, n: int, **params) -> requests.Response:
    return requests.get(base_url(root, n=n) + "/wp-json/wc/v3/customers", params=params, timeout=5)


def test_generated_store_checks_auth_like_the_sandbox(stores):
    assert _get(stores, 300, **QUERY).json()["code"] == "woocommerce_rest_cannot_view"
    wrong = _get(stores, 300, **QUERY, consumer_key=KEY, consumer_secret="nope")
    assert wrong.status_code == 401 and wrong.json()["code"] == "woocommerce_rest_authentication_error"
    basic = requests.get(
        base_url(stores, n=300) + "/wp-json/wc/v3/customers", params=QUERY, auth=(KEY, SECRET), timeout=5
    )
    assert basic.status_code == 200 and len(basic.json()) == 100


def test_generated_store_pages_by_offset_and_page(stores):
    by_offset = _get(stores, 300, **QUERY, **AUTH, offset=295)
    assert [r["id"] for r in by_offset.json()] == [296, 297, 298, 299, 300]
    assert by_offset.headers["X-WP-Total"] == "300" and by_offset.headers["X-WP-TotalPages"] == "3"
    by_page = _get(stores, 300, **QUERY, **AUTH, page=2)
    assert [r["id"] for r in by_page.json()] == list(range(101, 201))
    assert 'rel="next"' in by_page.headers["Link"] and 'rel="prev"' in by_page.headers["Link"]
    assert by_page.json()[0] == customer(101)
    desc = _get(stores, 300, **{**QUERY, "order": "desc", "per_page": 3}, **AUTH)
    assert [r["id"] for r in desc.json()] == [300, 299, 298]
    assert _get(stores, 300, **{**QUERY, "per_page": 101}, **AUTH).status_code == 400
    assert _get(stores, 300, **QUERY, **AUTH, offset=300).json() == []
    # Another order is the sandbox's own (slow) path over every record: still right.
    by_name = _get(stores, 30, **{**QUERY, "orderby": "name"}, **AUTH)
    assert sorted(r["id"] for r in by_name.json()) == list(range(1, 31))


def _queries(sandbox) -> list[dict]:
    """The list requests a store got, once no more are arriving (speculative fetches finish late)."""
    seen = -1
    while seen != len(sandbox.app.requests_seen):
        seen = len(sandbox.app.requests_seen)
        time.sleep(0.3)
    return [{k: v[0] for k, v in r.query.items()} for r in sandbox.app.requests_seen]


def _keys(queries: list[dict]) -> set[str]:
    return {json.dumps(q, sort_keys=True) for q in queries}


@pytest.mark.parametrize("threads", [1, 4])
def test_reference_asks_for_exactly_the_connectors_pages(recorded, make_connection, org, threads):
    n = 1234
    engine_store, engine_root = recorded(n)
    ref_store, ref_root = recorded(n)
    conn = make_connection(org, kind="woocommerce", base_url=engine_root, credentials=dict(AUTH))
    pages = Customers().iter_pages(FetchContext(WooClient(conn), "", None, True))
    assert [r["id"] for page in pages for r in page.records] == list(range(1, n + 1))

    url = ref_root + "/wp-json/wc/v3/customers"
    got = [r["id"] for page in reference.pages(url, key=KEY, secret=SECRET, threads=threads) for r in page]
    assert sorted(set(got)) == list(range(1, n + 1))

    connector, ref = _queries(engine_store), _queries(ref_store)
    assert len(ref) == len(_keys(ref)) == len(reference.offsets(n, 100, Customers().overlap))
    # The same requests (parameters, auth) for every page holding records. The connector may also
    # prefetch a page or two past the end (answered []) and re-read its last page: its own overhead.
    assert _keys(q for q in connector if int(q["offset"]) < n) == _keys(ref)
    assert all(int(q["offset"]) >= n for q in connector if json.dumps(q, sort_keys=True) not in _keys(ref))
    assert {q["consumer_key"] for q in connector} == {KEY}


def test_reference_offsets_follow_the_connectors_overlap():
    assert reference.offsets(250, 100, 5) == [0, 95, 190]
    assert reference.offsets(195, 100, 5) == [0, 95, 190]  # 95+100 == 195: the page at 95 is full
    assert reference.offsets(40, 100, 5) == [0]


def test_engine_runs_the_real_connector_against_a_generated_store(stores, make_connection, org):
    conn = make_connection(org, kind="woocommerce", base_url=base_url(stores, n=250), credentials=dict(AUTH))
    assert urlsplit(conn.base_url).path == "/n250/d0"  # a store in a subdirectory, as the connector allows
    result = sync_start(connection=conn, resource="customers", enqueue=False, full_scan=True)
    assert run_queue(result.queue.pk) == "done"
    assert Customer.objects.filter(connection=conn).count() == 250
    row = Customer.objects.get(connection=conn, external_id="123")
    expected = Customers().map(customer(123))
    assert (row.email, row.phone, row.billing, row.extra) == (
        expected["email"],
        expected["phone"],
        expected["billing"],
        expected["extra"],
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_reference_writes_the_rows_the_engine_writes(stores, make_connection, org, settings):
    from django.db import connection

    engine_conn = make_connection(org, kind="woocommerce", base_url=base_url(stores, n=210), credentials=dict(AUTH))
    ref_conn = make_connection(
        org, kind="woocommerce", name="reference", base_url=base_url(stores, n=210), credentials=dict(AUTH)
    )
    result = sync_start(connection=engine_conn, resource="customers", enqueue=False, full_scan=True)
    assert run_queue(result.queue.pk) == "done"
    params = connection.get_connection_params()
    dsn = " ".join(f"{k}={v}" for k, v in params.items() if k in ("host", "port", "dbname", "user", "password") and v)
    _, rows = reference.run(
        base_url(stores, n=210), dsn, organization_id=org.pk, connection_id=ref_conn.pk, key=KEY, secret=SECRET
    )
    assert rows == 210
    fields = ["external_id", *reference.COLUMNS[1:]]
    engine_rows = list(Customer.objects.filter(connection=engine_conn).order_by("external_id").values_list(*fields))
    ref_rows = list(Customer.objects.filter(connection=ref_conn).order_by("external_id").values_list(*fields))
    assert engine_rows == ref_rows and len(ref_rows) == 210
