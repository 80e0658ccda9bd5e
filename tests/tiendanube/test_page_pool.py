"""The page pool of a Tiendanube scan (connectors/tiendanube/resources.py, iter_pages): once a window's total is
known its pages are fetched concurrently, but never more than TIENDANUBE_PAGE_CONCURRENCY ahead of the page the
consumer is on, and a consumer that stops leaves no queue of requests behind. Before, every page of the window
(up to 50) was requested at once, held in memory whatever the consumer's pace, and closing the scan waited for
all of them."""

import pytest

from connectors.base import FetchContext
from connectors.tiendanube.connector import connector
from connectors.tiendanube.resources import Products

pytestmark = pytest.mark.django_db


@pytest.fixture
def paged(tn_settings, tn_sandbox, store_conn):
    tn_settings.TIENDANUBE_BUCKET_SIZE = 40
    tn_settings.TIENDANUBE_BUCKET_DRAIN = 1000.0  # no waiting on the bucket: the pool alone decides
    tn_settings.TIENDANUBE_BUCKET_MARGIN = 2
    tn_settings.TIENDANUBE_PAGE_SIZE = 5
    tn_settings.TIENDANUBE_PAGE_CONCURRENCY = 3
    sb = tn_sandbox(stores=1, records=60, bucket_size=40, drain=1000.0)  # 12 pages of 5 products
    conn = store_conn(sb)
    client = connector.client(conn)
    yield sb, Products().iter_pages(FetchContext(client, "", None, True))
    client.close()


def test_never_more_than_the_concurrency_ahead_of_the_consumer(paged):
    import time

    sb, pages = paged
    seen, calls = [], []
    for page in pages:
        seen.extend(r["id"] for r in page.records)
        time.sleep(0.05)  # a slow consumer: the pool must wait for it, not run to the end of the window
        calls.append(sb.api_calls)
    assert len(seen) == len(set(seen)) == 60
    # Page 1 alone (it gives the total), then pages 2-4 at once; each page consumed lets one more go.
    for n, made in enumerate(calls, start=1):
        assert made <= min(12, n + 3), calls


def test_a_consumer_that_stops_leaves_no_requests_behind(paged):
    import time

    sb, pages = paged
    next(pages)
    next(pages)  # page 2: pages 3 and 4 requested, and page 5 after it
    pages.close()
    time.sleep(0.3)  # anything still queued would have been sent by now
    assert sb.api_calls <= 2 + 3, sb.api_calls


def test_closing_the_scan_does_not_wait_for_requests_in_flight(paged, monkeypatch):
    import threading
    import time

    sb, pages = paged
    next(pages)  # page 1 (inline): the generator is running now, its client known
    client = pages.gi_frame.f_locals["ctx"].client
    real, started, release = client.get_page, threading.Event(), threading.Event()

    def slow(path, params):
        if int(params.get("page", 1)) >= 5:
            started.set()
            release.wait(5)  # a request that hangs until the test lets it go, then fails (nobody reads it)
            raise RuntimeError("released")
        return real(path, params)

    monkeypatch.setattr(client, "get_page", slow)
    next(pages)  # page 2; pages 3 and 4 done or in flight, page 5 requested
    assert started.wait(5)  # page 5's request is being sent (hangs)
    t0 = time.perf_counter()
    pages.close()
    waited = time.perf_counter() - t0
    release.set()
    assert waited < 1.0, waited  # before: close waited for every page of the window


def test_a_page_thread_that_touched_the_database_closes_its_connection(paged, monkeypatch):
    """A page request may touch the database from its pool thread (a 429 counted, a store marked for
    re-authorisation): that thread's connection is closed when the page is done, not left open for as long as
    the pool's thread lives."""
    import threading

    from django.db import connections

    sb, pages = paged
    next(pages)  # page 1 (inline): the generator is running now, its client known
    client = pages.gi_frame.f_locals["ctx"].client
    real, opened = client.get_page, []

    def touching(path, params):
        connections["default"].ensure_connection()  # what a 429's count or a re-authorisation does
        opened.append((threading.current_thread().name, connections["default"]))
        return real(path, params)

    monkeypatch.setattr(client, "get_page", touching)
    closed: list[object] = []
    wrapper_class = type(connections["default"])
    real_close = wrapper_class.close
    monkeypatch.setattr(wrapper_class, "close", lambda self: closed.append(self) or real_close(self))
    assert len([page for page in pages]) == 11
    in_pool = [wrapper for thread, wrapper in opened if thread.startswith("tn-page")]
    assert len(in_pool) == 11
    for wrapper in in_pool:
        assert any(c is wrapper for c in closed)
        # Django keeps an in-memory SQLite database (the SQLite suite's) open on close(); any other it drops.
        if not getattr(wrapper, "is_in_memory_db", lambda: False)():
            assert wrapper.connection is None
