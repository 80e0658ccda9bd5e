"""Pages are fetched in parallel only once the upstream proves slow (core.paging.ReadAhead; issue 20: against a
fast upstream the threads cost more CPU and time than they hide)."""

from __future__ import annotations

import threading

import pytest

from connectors.base import FetchContext
from connectors.woocommerce import conf
from connectors.woocommerce import resources as woo
from connectors.woocommerce.client import WooClient
from connectors.woocommerce.resources import Customers
from core.paging import ReadAhead

MS = 0.001


def test_fast_pages_stay_inline_and_three_slow_pages_in_a_row_start_the_read_ahead():
    window = ReadAhead(3)
    assert window.size == 0  # inline until the upstream proves slow
    for _ in range(100):
        window.inline(wall=1.5 * MS, cpu=1.0 * MS)  # 0.5 ms waiting: a fast upstream
    assert window.size == 0
    window.inline(wall=40 * MS, cpu=1 * MS)
    window.inline(wall=40 * MS, cpu=1 * MS)
    window.inline(wall=2 * MS, cpu=1 * MS)  # a fast page in between: a spike, not a slow upstream
    window.inline(wall=40 * MS, cpu=1 * MS)
    window.inline(wall=40 * MS, cpu=1 * MS)
    assert window.size == 0
    window.inline(wall=40 * MS, cpu=1 * MS)
    assert window.size == 3
    for _ in range(50):  # for the rest of the fetch
        window.inline(wall=1 * MS, cpu=1 * MS)
    assert window.size == 3


def test_the_wait_is_what_the_page_did_not_spend_on_cpu():
    window = ReadAhead(2)
    for _ in range(5):
        window.inline(wall=30 * MS, cpu=28 * MS)  # a slow page that was this thread's own work: nothing to hide
    assert window.size == 0
    for _ in range(3):
        window.inline(wall=30 * MS, cpu=20 * MS)
    assert window.size == 2


def test_no_threads_no_read_ahead_and_zero_means_from_the_start():
    never = ReadAhead(0)
    for _ in range(10):
        never.inline(wall=1.0, cpu=0.0)
    assert never.size == 0
    assert ReadAhead(3, slow=0).size == 3
    assert ReadAhead(3, slow=-1).size == 3


def _scan(conn, monkeypatch) -> tuple[list[int], list[str]]:
    """Every record id of a full customer scan, and the thread that fetched each page (in fetch order)."""
    threads: list[str] = []
    lock = threading.Lock()
    real = woo.WooResource._get

    def recording(self, *args, **kwargs):
        with lock:
            threads.append(threading.current_thread().name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(woo.WooResource, "_get", recording)
    client = WooClient(conn)
    try:
        pages = list(Customers().iter_pages(FetchContext(client=client, cursor="", token=None, full_scan=True)))
    finally:
        client.close()
    return [r["id"] for p in pages for r in p.records], threads


def test_a_slow_upstream_is_read_ahead_after_three_pages(woo, monkeypatch):
    sandbox, conn = woo(size=1200)  # 13 pages of 95 new records
    sandbox.faults.latency = 0.03  # 30 ms a request: well over the 5 ms a page may wait inline
    monkeypatch.setattr(conf, "PAGE_CONCURRENCY", 4)
    ids, threads = _scan(conn, monkeypatch)
    assert ids == sorted(sandbox.ids("customers"))
    caller = threading.current_thread().name
    assert threads[:3] == [caller] * 3  # inline until three pages in a row waited
    ahead = [t for t in threads[3:-1] if t != caller]
    # From then on every page but the one already due when the window opened came from the page threads.
    assert len(threads[3:-1]) - len(ahead) <= 1
    assert len(ahead) >= 9 and all(t.startswith("woo-customers") for t in ahead), threads
    assert threads[-1] == caller  # the last page is read again after every earlier one (iter_pages)


def test_a_fast_upstream_is_read_inline(woo, monkeypatch):
    sandbox, conn = woo(size=1200)
    # No sandbox latency; a threshold no loopback page comes near, so timing cannot decide this test.
    monkeypatch.setattr(conf, "READ_AHEAD_AFTER_MS", 10_000.0)
    ids, threads = _scan(conn, monkeypatch)
    assert ids == sorted(sandbox.ids("customers"))
    assert set(threads) == {threading.current_thread().name}
    assert len(threads) == 13  # each offset once: nothing speculative to re-read


@pytest.mark.parametrize("after_ms", [0.0, 10_000.0])
def test_inline_and_read_ahead_scans_agree(woo, monkeypatch, after_ms):
    sandbox, conn = woo(size=777)
    monkeypatch.setattr(conf, "READ_AHEAD_AFTER_MS", after_ms)
    ids, threads = _scan(conn, monkeypatch)
    assert ids == sorted(sandbox.ids("customers"))
    assert any(t.startswith("woo-customers") for t in threads) == (after_ms == 0.0)
