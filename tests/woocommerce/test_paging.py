"""Full scans that survive page shifting: records deleted, inserted and edited while we page."""

from __future__ import annotations

import functools
import marshal
import threading

import pytest

from connectors.base import FetchContext
from connectors.woocommerce.client import WooClient
from connectors.woocommerce.resources import Customers, Orders
from customers.models import Customer
from sync import services
from sync.models import QueueState


def _scan_ids(resource, conn, **ctx) -> list[int]:
    client = WooClient(conn)
    try:
        pages = list(resource.iter_pages(FetchContext(client=client, cursor="", token=None, full_scan=True, **ctx)))
    finally:
        client.close()
    return [r["id"] for p in pages for r in p.records]


def _mutate_once(sandbox, at_request: int, action):
    """Run ``action`` inside the sandbox right after it computed its ``at_request``-th list page."""
    seen = []
    lock = threading.Lock()

    def hook(name, info):
        with lock:
            seen.append(info["offset"])
            fire = len(seen) == at_request
        if fire:
            action()

    sandbox.on_list = hook
    return seen


def test_deletions_behind_the_scan_lose_nothing(woo, read_ahead):
    sandbox, conn = woo(size=450)
    before = set(sandbox.ids("customers"))
    first_page = sorted(before)[:95]
    victims = first_page[10:40]  # 30 records already read: everything after them shifts 30 places left

    _mutate_once(sandbox, 1, lambda: [sandbox.delete("customers", i) for i in victims])
    ids = _scan_ids(Customers(), conn)
    assert len(ids) == len(set(ids)), "a record was yielded twice"
    alive = set(sandbox.ids("customers"))
    assert alive <= set(ids), f"lost {sorted(alive - set(ids))[:10]}"


def test_insertions_and_deletions_mid_scan_with_engine(woo, read_ahead):
    sandbox, conn = woo(size=450)
    services.sync_start(connection=conn, resource="customers")
    assert Customer.objects.filter(connection=conn, deleted_at__isnull=True).count() == 450

    ids = sandbox.ids("customers")
    victims = ids[20:45] + ids[200:210]  # behind the scan and ahead of it

    def churn():
        for i in victims:
            sandbox.delete("customers", i)
        for n in range(5):
            sandbox.create("customers", email=f"new{n}@example.test")

    _mutate_once(sandbox, 2, churn)
    q = services.sync_start(connection=conn, resource="customers").queue
    q.refresh_from_db()
    assert q.state == QueueState.DONE, q.last_error
    alive = set(map(str, sandbox.ids("customers")))
    live_local = set(
        Customer.objects.filter(connection=conn, deleted_at__isnull=True).values_list("external_id", flat=True)
    )
    existed_before = set(map(str, ids))
    # every record alive throughout is still live locally (none lost, none falsely marked deleted)
    assert alive & existed_before <= live_local
    assert not (live_local - alive - set(map(str, victims)))

    # a quiet third run converges exactly, and deletions are marks, never hard deletes
    sandbox.on_list = None
    services.sync_start(connection=conn, resource="customers")
    live_local = set(
        Customer.objects.filter(connection=conn, deleted_at__isnull=True).values_list("external_id", flat=True)
    )
    assert live_local == alive
    assert Customer.objects.filter(connection=conn, deleted_at__isnull=False).count() == len(victims)


@pytest.mark.parametrize("at_request", [2, 3, 4])
def test_orders_edited_while_paging_are_not_skipped(woo, read_ahead, at_request):
    sandbox, conn = woo(size=10, orders=400)
    order_ids = sandbox.ids("orders")
    # Edits while paging must not make a record vanish from the scan (a full scan would then mark it
    # deleted), whatever the moment the pages were fetched in parallel.
    _mutate_once(sandbox, at_request, lambda: [sandbox.update("orders", i, status="completed") for i in order_ids[:60]])
    ids = _scan_ids(Orders(), conn)
    assert set(ids) == set(order_ids)


def test_concurrent_and_sequential_scans_agree(woo, monkeypatch):
    from connectors.woocommerce import conf

    sandbox, conn = woo(size=333)
    monkeypatch.setattr(conf, "READ_AHEAD_AFTER_MS", 0.0)  # in parallel from the start
    parallel = _scan_ids(Customers(), conn)
    monkeypatch.setattr(conf, "READ_AHEAD_AFTER_MS", 10_000.0)  # inline: no loopback page is that slow
    inline = _scan_ids(Customers(), conn)
    monkeypatch.setattr(conf, "PAGE_CONCURRENCY", 1)
    assert _scan_ids(Customers(), conn) == parallel == inline == sorted(sandbox.ids("customers"))


def test_customer_arriving_by_webhook_during_a_full_scan_is_not_marked_deleted(woo, monkeypatch):
    from core import clock
    from sync import sinks

    sandbox, conn = woo(size=20)
    real = sinks.TableSink.mark_missing_deleted

    def webhook_lands_first(self, run):
        # created upstream after the last page was read; its webhook was processed a moment ago
        Customer.objects.create(
            organization=conn.organization,
            connection=conn,
            external_id="9999",
            email="late@example.test",
            synced_at=clock.now(),
        )
        return real(self, run)

    monkeypatch.setattr(sinks.TableSink, "mark_missing_deleted", webhook_lands_first)
    services.sync_start(connection=conn, resource="customers")
    assert Customer.objects.get(connection=conn, external_id="9999").deleted_at is None


def test_a_record_whose_id_is_not_a_finite_number_has_no_sort_key_and_the_page_pages_on(monkeypatch):
    """``1e400`` parses as inf (the stdlib parser, which response_json falls back to for it) and ``int(inf)``
    raises OverflowError: that record has no usable sort key, like one whose id is not a number (before, the
    OverflowError escaped _get and failed the whole run)."""
    import types

    records = [{"id": 1}, {"id": float("inf")}, {"id": float("nan")}, {"id": 4}]
    from connectors.woocommerce import resources

    # The body only goes into Page.digest (and what Page.reload would parse again)
    response = types.SimpleNamespace(headers={}, content=b"[...]", encoding=None, url="http://127.0.0.1/customers")
    client = types.SimpleNamespace(request=lambda *a, **kw: response)
    monkeypatch.setattr(resources, "page_json", lambda response: records)  # as the stdlib parser reads them
    data, keys, *_ = Customers()._get(client, {}, 0)
    assert data == records and keys == [[1], None, None, [4]]


def test_a_page_makes_its_records_again_from_its_body_as_step_picked_them():
    """Page.reload (the engine lets a first sync's records go and may ask for them again): the records after
    ``last``, equal to the page's and new objects; a body that no longer holds those records is a BadPage."""
    import types

    from connectors.base import BadPage

    body = b'[{"id": 1, "email": "a@example.com"}, {"id": 2, "email": "b@example.com"}, {"id": 3}]'
    response = types.SimpleNamespace(
        content=body,
        headers={"X-WP-Total": "3"},
        encoding=None,
        url="http://127.0.0.1/wp-json/wc/v3/customers?consumer_key=ck_x&consumer_secret=cs_secret",
    )
    client = types.SimpleNamespace(request=lambda *a, **kw: response)
    ctx = FetchContext(client=client, cursor="", token=None, full_scan=True)
    resource = Customers()
    page = resource.step(ctx, {"offset": 0, "last": [1]})
    assert page.records == [{"id": 2, "email": "b@example.com"}, {"id": 3}]
    again = page.reload()
    assert again == page.records and again[0] is not page.records[0]
    # One of the resource's methods over plain values, the body's bytes first: what a fetch process sends.
    from sync.engine import _travelling

    content, *rest = page.reload.args
    assert content == body and rest[1] == "/wp-json/wc/v3/customers", "the path, never the query (keys)"
    assert _travelling(page.reload, resource) == ("_reloaded", page.reload.args)
    assert marshal.loads(marshal.dumps(page.reload.args)) == page.reload.args
    changed = functools.partial(page.reload.func, body.replace(b'"id": 3', b'"id": 4'), *rest)
    with pytest.raises(BadPage, match="parsed again"):
        changed()


@pytest.mark.django_db(transaction=True)
def test_a_first_sync_lets_each_pages_records_go_and_never_parses_a_body_twice(woo, monkeypatch, settings):
    """Against the sandbox over HTTP: every page reaches the main thread as a LazyPage whose records were let
    go (sync.engine's _released: their rows were encoded ahead), and no body is parsed a second time."""
    from connectors import base
    from connectors.woocommerce import resources
    from core.paging import LazyPage
    from sync import engine

    settings.SYNC_FETCH_PROCESS = False  # the fetch thread's path (tests/woocommerce/test_fetch_process.py: the other)
    parsed = []
    real_json = resources.page_json
    counted = lambda response: parsed.append(1) or real_json(response)  # noqa: E731
    monkeypatch.setattr(resources, "page_json", counted)
    monkeypatch.setattr(base, "page_json", counted)  # a page made again (page_json_again) would count too
    pages = []
    real_prepare = engine.QueueRunner._prepare_pages
    monkeypatch.setattr(
        engine.QueueRunner,
        "_prepare_pages",
        lambda self, group: pages.extend(p for p, _ in group) or real_prepare(self, group),
    )
    sandbox, conn = woo(size=250)  # pages at offsets 0, 95, 190 (and the empty one past the end)
    q = services.sync_start(connection=conn, resource="customers", enqueue=False).queue
    from sync.engine import run_queue

    run_queue(q.pk)
    q.refresh_from_db()
    assert q.state == QueueState.DONE and q.done_count == 250
    assert [type(p) for p in pages][:3] == [LazyPage] * 3 and all(p._records is None for p in pages[:3])
    assert len(parsed) == len(pages), "each body parsed once"
    assert Customer.objects.filter(connection=conn).count() == 250
