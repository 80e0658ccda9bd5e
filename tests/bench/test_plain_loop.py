"""Honesty of the pre-rendered upstream and of the plain-loop reference (bench/prerendered.py,
bench/plain_loop.py): the fake answers the real connector's exact requests, and the plain loop and its
no-parse variant write exactly the rows the engine writes. No timings: benchmarks are never assertions."""

from __future__ import annotations

import json
import threading

import pytest
import requests

from bench import plain_loop, reference
from bench.prerendered import KEY, SECRET, base_url, make_server
from bench.upstream import customer
from connectors.base import FetchContext
from connectors.woocommerce import conf
from connectors.woocommerce.client import WooClient
from connectors.woocommerce.resources import Customers
from customers.models import Customer
from sync.engine import run_queue
from sync.services import sync_start

AUTH = {"consumer_key": KEY, "consumer_secret": SECRET}
QUERY = {"role": "all", "orderby": "id", "order": "asc", "per_page": 100}


@pytest.fixture
def fake():
    """The pre-rendered upstream, served from a thread here; yields (root, stores) and records the requests."""
    server, stores = make_server()
    seen: list[str] = []
    handler = server.RequestHandlerClass
    original = handler.do_GET

    def recording(self):
        seen.append(self.path)
        return original(self)

    handler.do_GET = recording
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    root = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield root, stores, seen
    finally:
        server.shutdown()
        server.server_close()


def _get(root: str, n: int, **params) -> requests.Response:
    return requests.get(base_url(root, n=n) + "/wp-json/wc/v3/customers", params=params, timeout=5)


def test_prerendered_speaks_the_woo_dialect(fake):
    root, _, _ = fake
    assert _get(root, 300, **QUERY).json()["code"] == "woocommerce_rest_cannot_view"
    wrong = _get(root, 300, **QUERY, consumer_key=KEY, consumer_secret="nope")
    assert wrong.status_code == 401 and wrong.json()["code"] == "woocommerce_rest_authentication_error"
    basic = requests.get(base_url(root, n=300) + "/wp-json/wc/v3/customers", params=QUERY, auth=(KEY, SECRET))
    assert basic.status_code == 200 and len(basic.json()) == 100
    assert _get(root, 300, **{**QUERY, "per_page": 101}, **AUTH).json()["code"] == "rest_invalid_param"
    assert _get(root, 300, **QUERY, **AUTH, page=0).status_code == 400
    # offset wins over page; the connector's overlap offsets; past the end is 200 []
    by_offset = _get(root, 300, **QUERY, **AUTH, offset=295, page=2)
    assert [r["id"] for r in by_offset.json()] == [296, 297, 298, 299, 300]
    assert by_offset.headers["X-WP-Total"] == "300" and by_offset.headers["X-WP-TotalPages"] == "3"
    assert "Link" not in by_offset.headers and by_offset.headers["Date"].endswith("GMT")
    past = _get(root, 300, **QUERY, **AUTH, offset=395)
    assert past.status_code == 200 and past.json() == [] and past.headers["X-WP-Total"] == "300"
    # the page form, with prev/next links
    by_page = _get(root, 300, **QUERY, **AUTH, page=2)
    assert by_page.json() == [customer(i) for i in range(101, 201)]
    assert by_page.content == json.dumps([customer(i) for i in range(101, 201)]).encode()  # the sandbox's bytes
    assert "page=1" in by_page.headers["Link"] and 'rel="prev"' in by_page.headers["Link"]
    assert "page=3" in by_page.headers["Link"] and 'rel="next"' in by_page.headers["Link"]
    assert KEY not in by_page.headers["Link"]
    assert 'rel="next"' not in _get(root, 300, **QUERY, **AUTH, page=3).headers["Link"]
    # forms nobody pre-rendered are built on request, not served wrong
    assert [r["id"] for r in _get(root, 300, **{**QUERY, "per_page": 7}, **AUTH, offset=3).json()] == list(range(4, 11))
    desc = _get(root, 300, **{**QUERY, "order": "desc", "per_page": 3}, **AUTH)
    assert [r["id"] for r in desc.json()] == [300, 299, 298]
    # what it cannot serve correctly is refused
    assert _get(root, 300, **{**QUERY, "orderby": "name"}, **AUTH).json()["code"] == "bench_unsupported"
    assert _get(root, 300, **QUERY, **AUTH, email="customer1@example.com").status_code == 400
    # a store with a delay shares the bodies of the store without
    assert _get(root, 300, **QUERY, **AUTH, page=2).content == _get(root, 300, **QUERY, **AUTH, page=2).content


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("n", [1234, 1300, 40])
def test_connector_reads_every_record_once_from_the_prerendered_fake(fake, make_connection, org, n, concurrency):
    root, stores, seen = fake
    stores.get(n, 0)  # built "at start", as the harness does
    conn = make_connection(org, kind="woocommerce", base_url=base_url(root, n=n), credentials=dict(AUTH))
    before = conf.PAGE_CONCURRENCY, conf.READ_AHEAD_AFTER_MS
    conf.PAGE_CONCURRENCY = concurrency
    conf.READ_AHEAD_AFTER_MS = 0.0  # 4: in parallel from the start (loopback pages are too fast to start it)
    try:
        pages = list(Customers().iter_pages(FetchContext(WooClient(conn), "", None, True)))
    finally:
        conf.PAGE_CONCURRENCY, conf.READ_AHEAD_AFTER_MS = before
    records = [r for page in pages for r in page.records]
    assert [r["id"] for r in records] == list(range(1, n + 1))  # every record, once, in order
    assert records[-1] == customer(n)
    # The connector's own query form (offset paging with overlap, its parameters, query-string keys) was
    # answered from pre-rendered pages: no page had to be built on request.
    queries = [dict(p.split("=", 1) for p in path.partition("?")[2].split("&")) for path in seen]
    assert all(
        {"offset", "per_page", "role", "orderby", "order", "consumer_key", "consumer_secret"} <= set(q) for q in queries
    )
    assert {int(q["offset"]) for q in queries if int(q["offset"]) < n} == set(reference.offsets(n, 100, 5))
    assert len(stores.get(n, 0).pages) == len(set(range(0, n, 95)) | set(range(0, n, 100)))


@pytest.mark.parametrize("threads", [1, 4])
def test_plain_loop_asks_for_every_page_once(fake, threads):
    root, _, seen = fake
    got = list(
        plain_loop.bodies(plain_loop.customers_url(base_url(root, n=1234)), key=KEY, secret=SECRET, threads=threads)
    )
    assert [r["id"] for body in got for r in json.loads(body)] == list(range(1, 1235))
    pages = sorted(int(dict(p.split("=", 1) for p in path.partition("?")[2].split("&"))["page"]) for path in seen)
    assert pages == list(range(1, 14))


def _dsn() -> str:
    from django.db import connection

    params = connection.get_connection_params()
    return " ".join(f"{k}={v}" for k, v in params.items() if k in ("host", "port", "dbname", "user", "password") and v)


FIELDS = [
    "organization_id",
    "external_id",
    "email",
    "first_name",
    "last_name",
    "username",
    "phone",
    "company",
    "billing",
    "shipping",
    "is_paying_customer",
    "customer_code",
    "customer_group_id",
    "loyalty_balance",
    "loyalty_tier",
    "upstream_created_at",
    "upstream_updated_at",
    "deleted_at",
    "extra",
]


def _rows(conn) -> list[tuple]:
    return list(Customer.objects.filter(connection=conn).order_by("external_id").values_list(*FIELDS))


def _engine_first(fake, make_connection, org, n):
    """The engine's first full sync of the fake's store of ``n``: (its url, a maker of connections to it, the
    rows the engine wrote)."""
    root, _, _ = fake
    url = base_url(root, n=n)

    def connection(name):
        return make_connection(org, kind="woocommerce", name=name, base_url=url, credentials=dict(AUTH))

    engine_conn = connection("engine")
    result = sync_start(connection=engine_conn, resource="customers", enqueue=False, full_scan=True)
    assert run_queue(result.queue.pk) == "done"
    engine_rows = _rows(engine_conn)
    assert len(engine_rows) == n and engine_rows[0][1] == "1"
    return url, connection, engine_rows


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("n", [250, 300])
def test_every_postgresql_loop_writes_the_rows_the_engine_writes(fake, make_connection, org, n):
    url, connection, engine_rows = _engine_first(fake, make_connection, org, n)

    for name, fn, threads, passes in (
        ("loop", plain_loop.run, 1, 2),  # empty table, then every row present (the update path)
        ("loop4", plain_loop.run, 4, 2),
        ("noparse", plain_loop.run_noparse, 1, 2),
        ("noparse4", plain_loop.run_noparse, 4, 2),
        ("direct", plain_loop.run_direct, 1, 1),  # B1's info row: a first sync only (no ON CONFLICT)
    ):
        conn = connection(name)
        for _ in range(passes):
            _, rows = fn(
                url, _dsn(), organization_id=org.pk, connection_id=conn.pk, key=KEY, secret=SECRET, threads=threads
            )
            assert rows == n, name
            assert _rows(conn) == engine_rows, name
        assert not Customer.objects.filter(connection=conn, synced_at__isnull=True).exists()


def test_plain_loop_reads_a_null_date_modified_as_the_mapper_does():
    """A customer never edited may come with ``date_modified_gmt: null``: the mapper then takes
    ``date_created_gmt`` as the update time, and so does the loop (it raised a TypeError before)."""
    record = json.loads(json.dumps(customer(7)))
    record["date_modified"] = record["date_modified_gmt"] = None
    columns = plain_loop._columns(record)
    assert columns[11] == columns[10] == record["date_created_gmt"] + "Z"
    mapped = Customers().map(record)
    assert mapped["upstream_updated_at"] == mapped["upstream_created_at"]


def test_every_loop_runs_with_the_engines_collector_threshold_and_restores_it(monkeypatch):
    """The reference takes the engine's simple speed-up too: the collector's young generation raised to the
    engine's default (SYNC_GC_THRESHOLD) for the whole run, and put back after it, an error included."""
    import gc

    from django.conf import settings

    assert plain_loop.GC_THRESHOLD == settings.SYNC_GC_THRESHOLD

    class Reached(Exception):
        pass

    seen = []

    def connect(*args, **kwargs):  # the first thing each loop does: record, and stop the run there
        seen.append(gc.get_threshold()[0])
        raise Reached

    monkeypatch.setattr(plain_loop.psycopg, "connect", connect)
    monkeypatch.setattr("sqlite3.connect", connect)
    before = gc.get_threshold()
    assert before[0] < plain_loop.GC_THRESHOLD
    for fn in (plain_loop.run, plain_loop.run_direct, plain_loop.run_noparse):
        with pytest.raises(Reached):
            fn("http://127.0.0.1:9", "postgres://unused", organization_id=1, connection_id=1, key="k", secret="s")
        assert gc.get_threshold() == before
    with pytest.raises(Reached):
        plain_loop.run_sqlite(
            "http://127.0.0.1:9", "unused.sqlite3", organization_id=1, connection_id=1, key="k", secret="s"
        )
    assert gc.get_threshold() == before
    assert seen == [plain_loop.GC_THRESHOLD] * 4


@pytest.mark.forks_db  # the loop opens the database file itself: SQLite on a file (tests/sync/test_fetch_process_sqlite.py)
@pytest.mark.django_db(transaction=True)
def test_the_sqlite_loop_writes_the_rows_the_engine_writes(fake, make_connection, org):
    """bench.sqlite's reference (plain_loop.run_sqlite) against the engine on the same SQLite file: the same
    rows, on an empty table and again with every row present."""
    from django.db import connection as db

    if db.vendor != "sqlite":
        pytest.skip("the SQLite loop; the PostgreSQL loops are checked above")
    n = 250
    url, connection, engine_rows = _engine_first(fake, make_connection, org, n)
    conn = connection("loop")
    path = db.settings_dict["NAME"]
    db.close()  # the loop takes the file's write lock for its whole run
    for _ in range(2):
        _, rows = plain_loop.run_sqlite(
            url, path, organization_id=org.pk, connection_id=conn.pk, key=KEY, secret=SECRET
        )
        assert rows == n
        assert _rows(conn) == engine_rows
    assert not Customer.objects.filter(connection=conn, synced_at__isnull=True).exists()
