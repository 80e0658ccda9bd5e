"""Pages are fetched in parallel only once the upstream proves slow (core.paging.ReadAhead; issue 20: against a
fast upstream the threads cost more CPU and time than they hide)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from connectors.base import FetchContext
from connectors.woocommerce import conf
from connectors.woocommerce import resources as woo
from connectors.woocommerce.client import WooClient
from connectors.woocommerce.resources import Customers
from connectors.woocommerce.sandbox import _error as sandbox_error
from core.paging import ReadAhead

MS = 0.001


def test_fast_pages_stay_inline_and_three_slow_pages_in_a_row_start_the_read_ahead():
    window = ReadAhead(3)  # 20 ms, 3 in a row; at once over 40 ms
    assert window.size == 0  # inline until the upstream proves slow
    for _ in range(100):
        window.inline(wall=1.5 * MS, cpu=1.0 * MS)  # 0.5 ms waiting: a fast upstream
    for _ in range(10):
        window.inline(wall=16 * MS, cpu=1.0 * MS)  # 15 ms: what the lock alone can make pages wait, in a row
    assert window.size == 0
    window.inline(wall=25 * MS, cpu=1 * MS)
    window.inline(wall=25 * MS, cpu=1 * MS)
    window.inline(wall=2 * MS, cpu=1 * MS)  # a fast page in between: a spike, not a slow upstream
    window.inline(wall=25 * MS, cpu=1 * MS)
    window.inline(wall=35 * MS, cpu=1 * MS)
    assert window.size == 0
    window.inline(wall=22 * MS, cpu=1 * MS)
    assert window.size == 3
    assert window.opened_after == pytest.approx([24 * MS, 34 * MS, 21 * MS])
    for _ in range(50):  # for the rest of the fetch
        window.inline(wall=1 * MS, cpu=1 * MS)
    assert window.size == 3


def test_one_page_that_waited_long_opens_the_window_at_once():
    window = ReadAhead(3)
    window.inline(wall=39 * MS, cpu=1 * MS)  # 38 ms: not yet (the lock alone made single pages wait up to 25 ms)
    assert window.size == 0
    window.inline(wall=1 * MS, cpu=0.5 * MS)
    window.inline(wall=52 * MS, cpu=1 * MS)  # a real store's page
    assert window.size == 3 and window.opened_after == pytest.approx([38 * MS, 0.5 * MS, 51 * MS])
    late = ReadAhead(2, slow=0.010)  # at once: twice the threshold unless given
    late.inline(wall=0.019, cpu=0)
    assert late.size == 0
    late.inline(wall=0.021, cpu=0)
    assert late.size == 2
    given = ReadAhead(2, slow=0.010, at_once=0.1)
    given.inline(wall=0.09, cpu=0)
    assert given.size == 0


def test_the_wait_is_what_the_page_did_not_spend_on_cpu():
    window = ReadAhead(2)
    for _ in range(5):
        window.inline(wall=60 * MS, cpu=58 * MS)  # a long page that was this thread's own work: nothing to hide
    assert window.size == 0
    for _ in range(3):
        window.inline(wall=30 * MS, cpu=5 * MS)
    assert window.size == 2


def test_no_threads_no_read_ahead_and_zero_means_from_the_start():
    never = ReadAhead(0)
    for _ in range(10):
        never.inline(wall=1.0, cpu=0.0)
    assert never.size == 0
    assert ReadAhead(3, slow=0).size == 3
    assert ReadAhead(3, slow=-1).size == 3


def _scan(conn, monkeypatch) -> tuple[list[int], list[tuple[str, int]]]:
    """Every record id of a full customer scan, and (thread, offset) of each page request, in request order."""
    ids, requests, _ = _scan_with_client(conn, monkeypatch)
    return ids, requests


def _scan_with_client(conn, monkeypatch) -> tuple[list[int], list[tuple[str, int]], WooClient]:
    """_scan, with the scan's client (closed) for its counters."""
    requests: list[tuple[str, int]] = []
    lock = threading.Lock()
    real = woo.WooResource._get

    def recording(self, client, params, offset, *args, **kwargs):
        with lock:
            requests.append((threading.current_thread().name, offset))
        return real(self, client, params, offset, *args, **kwargs)

    monkeypatch.setattr(woo.WooResource, "_get", recording)
    client = WooClient(conn)
    try:
        pages = list(Customers().iter_pages(FetchContext(client=client, cursor="", token=None, full_scan=True)))
    finally:
        client.close()
    return [r["id"] for p in pages for r in p.records], requests, client


def test_a_slow_upstream_is_read_ahead_from_its_second_page(woo, monkeypatch):
    sandbox, conn = woo(size=1200)  # 13 pages of 95 new records: offsets 0, 95, ..., 1140
    sandbox.faults.latency = 0.06  # 60 ms a request, as a real store's page: over the 40 ms that open at once
    monkeypatch.setattr(conf, "PAGE_CONCURRENCY", 4)
    monkeypatch.setattr(conf, "READ_AHEAD_AFTER_MS", 20.0)
    ids, requests = _scan(conn, monkeypatch)
    assert ids == sorted(sandbox.ids("customers"))
    caller = threading.current_thread().name
    inline = [offset for thread, offset in requests if thread == caller]
    ahead = [offset for thread, offset in requests if thread != caller]
    # Page 1 inline (total unknown, and it proves the store slow); page 2 inline while 3-5 are fetched ahead;
    # every later page by the page threads, then the last one read again after every earlier one.
    assert inline == [0, 95, 1140]
    assert set(range(190, 1200, 95)) <= set(ahead)
    assert all(thread.startswith("woo-customers") for thread, offset in requests if thread != caller)


def test_a_fast_upstream_is_read_inline(woo, monkeypatch):
    sandbox, conn = woo(size=1200)
    # No sandbox latency; a threshold no loopback page comes near, so timing cannot decide this test.
    monkeypatch.setattr(conf, "READ_AHEAD_AFTER_MS", 10_000.0)
    ids, requests = _scan(conn, monkeypatch)
    assert ids == sorted(sandbox.ids("customers"))
    assert {thread for thread, _ in requests} == {threading.current_thread().name}
    assert [offset for _, offset in requests] == list(range(0, 1200, 95))  # each once: nothing to re-read


@pytest.mark.parametrize("after_ms", [0.0, 10_000.0])
def test_inline_and_read_ahead_scans_agree(woo, monkeypatch, after_ms):
    sandbox, conn = woo(size=777)
    monkeypatch.setattr(conf, "READ_AHEAD_AFTER_MS", after_ms)
    ids, requests = _scan(conn, monkeypatch)
    assert ids == sorted(sandbox.ids("customers"))
    assert any(thread.startswith("woo-customers") for thread, _ in requests) == (after_ms == 0.0)


@pytest.mark.parametrize("read_ahead", ["switch"], indirect=True)
def test_the_fixture_that_switches_mid_scan_does_switch(woo, monkeypatch, read_ahead):
    """tests/woocommerce/test_paging.py runs its mid-scan mutations with the window opening after two pages."""
    sandbox, conn = woo(size=1200)
    monkeypatch.setattr(conf, "PAGE_CONCURRENCY", 4)
    ids, requests = _scan(conn, monkeypatch)
    assert ids == sorted(sandbox.ids("customers"))
    caller = threading.current_thread().name
    assert [offset for thread, offset in requests if thread == caller] == [0, 95, 190, 1140]


def test_our_own_sleeps_between_attempts_are_not_the_upstreams_latency():
    window = ReadAhead(3)
    window.inline(wall=2.001, cpu=0.0005, slept=2.0)  # a 429's Retry-After of 2 s: the page itself was fast
    for _ in range(5):
        window.inline(wall=1.5 * MS, cpu=1 * MS, slept=0.0)
    assert window.size == 0
    window.inline(wall=2.06, cpu=1 * MS, slept=2.0)  # a slow page after the sleep: 59 ms of the store's own
    assert window.size == 3


def test_a_429_shuts_the_window_for_calm_pages_then_halves_what_is_read_ahead():
    window = ReadAhead(3, slow=0)  # ahead from the start
    assert window.size == 3
    window.shut()
    assert (window.size, window.most) == (0, 1)
    for _ in range(20):  # the next 20 pages are read one at a time, however slow
        window.inline(wall=1.0, cpu=0.0)
    assert window.size == 0
    window.inline(wall=50 * MS, cpu=1 * MS)  # then the usual rule, with half as many pages ahead
    assert window.size == 1
    window.shut()  # a second 429: one request at a time for the rest of the fetch
    assert (window.size, window.most) == (0, 0)
    for _ in range(50):
        window.inline(wall=1.0, cpu=0.0)
    assert window.size == 0
    shut_already = ReadAhead(3)
    shut_already.inline(wall=50 * MS, cpu=0.0)  # open
    assert shut_already.size == 3
    shut_already.shut()
    shut_already.shut()  # more 429s of the same burst, the window already shut: only the calm pages restart
    assert shut_already.most == 1
    for _ in range(19):
        shut_already.inline(wall=1.0, cpu=0.0)
    shut_already.shut()
    assert shut_already.most == 1
    for _ in range(20):
        shut_already.inline(wall=1.0, cpu=0.0)
    assert shut_already.size == 0
    # After the calm pages the usual rule starts afresh: one page over 20 ms is not three in a row.
    shut_already.inline(wall=30 * MS, cpu=0.0)
    shut_already.inline(wall=30 * MS, cpu=0.0)
    assert shut_already.size == 0
    shut_already.inline(wall=30 * MS, cpu=0.0)
    assert shut_already.size == 1
    quick = ReadAhead(3, calm=2)
    quick.shut()
    quick.inline(wall=1.0, cpu=0.0)
    quick.inline(wall=1.0, cpu=0.0)
    assert quick.size == 0
    quick.inline(wall=1.0, cpu=0.0)
    assert quick.size == 3  # the 429 found it shut: nothing to halve


def test_a_429_on_a_fast_upstream_keeps_the_scan_inline(woo, monkeypatch, settings):
    """Before: the Retry-After sleep counted as the page's wait and opened the window at once, so a store that
    had just asked us to slow down got four requests at a time for the rest of the scan. (Here the 429's calm
    pages keep the scan inline; the sleep's own subtraction is tested with a 5xx below.)"""
    sandbox, conn = woo(size=1200)
    sandbox.faults.rate_limit_next = 1  # the first request (page 1, inline) is answered 429, then served
    sandbox.faults.retry_after = "0.12"  # a real sleep: more than the 40 ms that open the window at once
    settings.SYNC_MAX_RATE_LIMIT_WAIT = 1.0
    monkeypatch.setattr(conf, "PAGE_CONCURRENCY", 4)
    monkeypatch.setattr(conf, "READ_AHEAD_AFTER_MS", 20.0)
    ids, requests, client = _scan_with_client(conn, monkeypatch)
    assert ids == sorted(sandbox.ids("customers"))
    assert {thread for thread, _ in requests} == {threading.current_thread().name}  # inline throughout
    assert [offset for _, offset in requests] == list(range(0, 1200, 95))
    assert sandbox.list_requests == len(requests) + 1  # the 429 and its retry inside page 1's request
    assert client.rate_limit_waits == 1
    assert client.retry_wait_seconds() == pytest.approx(0.12)


def _429_once_at(monkeypatch, sandbox, *offsets: int) -> list[int]:
    """The first request for each of ``offsets`` (whichever thread sends it) is answered 429 with a 50 ms
    Retry-After; the returned list holds each offset once that happened."""
    real_fault, limited = sandbox._fault, []

    def fault(position):
        if position in offsets and position not in limited:
            limited.append(position)
            return sandbox_error(429, "too_many_requests", "Too many requests.", headers={"Retry-After": "0.05"})
        return real_fault(position)

    monkeypatch.setattr(sandbox, "_fault", fault)
    return limited


def _slow_store_with_429s(woo, monkeypatch, settings, size: int, *offsets: int):
    """A 60 ms store of ``size`` customers read 4 pages at a time once slow, whose first request for each of
    ``offsets`` is answered 429 (_429_once_at)."""
    sandbox, conn = woo(size=size)
    sandbox.faults.latency = 0.06  # slow: the window opens after page 1
    settings.SYNC_MAX_RATE_LIMIT_WAIT = 1.0
    monkeypatch.setattr(conf, "PAGE_CONCURRENCY", 4)
    monkeypatch.setattr(conf, "READ_AHEAD_AFTER_MS", 20.0)
    return sandbox, conn, _429_once_at(monkeypatch, sandbox, *offsets)


def test_a_429_while_reading_ahead_goes_back_to_one_page_at_a_time(woo, monkeypatch, settings):
    # 20 pages: offsets 0, 95, ..., 1805
    sandbox, conn, limited = _slow_store_with_429s(woo, monkeypatch, settings, 1900, 380)
    ids, requests, client = _scan_with_client(conn, monkeypatch)
    assert ids == sorted(sandbox.ids("customers"))
    assert limited and client.rate_limit_waits == 1
    caller = threading.current_thread().name
    ahead = [offset for thread, offset in requests if thread != caller]
    assert 190 in ahead and 380 in ahead  # the window was open when the 429 came
    # Pages already in flight when the consumer saw the 429 are still used (at most 3 past the page it was
    # on); from there on every page is the consumer's own request, once.
    assert max(ahead) <= 380 + 4 * 95
    assert [offset for thread, offset in requests if offset > 380 + 4 * 95] == list(range(855, 1900, 95))
    assert {thread for thread, offset in requests if offset > 380 + 4 * 95} == {caller}
    assert Counter(offset for _, offset in requests) == Counter(range(0, 1900, 95))  # none asked for twice


def test_a_page_thread_that_touched_the_database_closes_its_connection(woo, monkeypatch, settings):
    """A 429 answered to a page thread is counted in the database (ops) from that thread, which opens a
    connection of its own: it is closed when the page is done, not left open (idle) for as long as the pool's
    thread lives."""
    from django.db import connections

    from ops import services as ops_services

    sandbox, conn, limited = _slow_store_with_429s(woo, monkeypatch, settings, 1900, 380)
    counted: list[tuple[str, object]] = []
    real = ops_services.rate_limited_record

    def record(connection_id):
        real(connection_id)
        counted.append((threading.current_thread().name, connections["default"]))

    monkeypatch.setattr(ops_services, "rate_limited_record", record)
    closed: list[object] = []  # every database wrapper closed, in whatever thread
    wrapper_class = type(connections["default"])
    real_close = wrapper_class.close
    monkeypatch.setattr(wrapper_class, "close", lambda self: closed.append(self) or real_close(self))
    ids, _, client = _scan_with_client(conn, monkeypatch)
    assert ids == sorted(sandbox.ids("customers"))
    caller = threading.current_thread().name
    in_page_threads = [wrapper for thread, wrapper in counted if thread != caller]
    assert limited and client.rate_limit_waits == 1 and len(in_page_threads) == 1
    assert any(wrapper is in_page_threads[0] for wrapper in closed)
    # Django keeps an in-memory SQLite database (the SQLite suite's) open on close(); any other it drops.
    if not getattr(in_page_threads[0], "is_in_memory_db", lambda: False)():
        assert in_page_threads[0].connection is None


def _recorded_sleeps(monkeypatch) -> list[float]:
    """The ``slept`` of every page ReadAhead.inline is told about, in order."""
    sleeps: list[float] = []
    real = ReadAhead.inline

    def inline(self, wall, cpu, slept=0.0):
        sleeps.append(slept)
        return real(self, wall, cpu, slept)

    monkeypatch.setattr(ReadAhead, "inline", inline)
    return sleeps


def test_a_5xx_backoff_is_not_counted_as_the_upstreams_wait(woo, monkeypatch, settings):
    """A transient error's backoff is our own sleep: the page that slept is told so, the pages after it are not
    (each page its own sleeps, not the total so far), and it does not count as a 429."""
    import backoff

    sandbox, conn = woo(size=1200)
    sandbox.faults.fail_next = [503]  # page 1's first attempt
    settings.SYNC_RETRY_BASE_SECONDS = 0.1
    monkeypatch.setattr(backoff, "full_jitter", lambda value: value)  # the whole backoff, so it is > 40 ms
    monkeypatch.setattr(conf, "PAGE_CONCURRENCY", 4)
    monkeypatch.setattr(conf, "READ_AHEAD_AFTER_MS", 10_000.0)  # timing must not decide this test
    sleeps = _recorded_sleeps(monkeypatch)
    ids, requests, client = _scan_with_client(conn, monkeypatch)
    assert ids == sorted(sandbox.ids("customers"))
    assert sandbox.list_requests == len(requests) + 1
    assert client.retry_wait_seconds() >= 0.1
    assert client.rate_limit_waits == 0
    assert len(sleeps) == len(requests) == 13
    assert sleeps[0] == pytest.approx(client.retry_wait_seconds()) and sleeps[1:] == [0.0] * 12


def test_after_a_5xx_a_store_that_gets_slow_is_still_read_ahead(woo, monkeypatch, settings):
    """The review's case: with the total of the sleeps so far subtracted from every later page, one early
    5xx would hide a slow store for the rest of the scan."""
    import backoff

    sandbox, conn = woo(size=1200)
    sandbox.faults.fail_next = [503]
    settings.SYNC_RETRY_BASE_SECONDS = 0.1
    monkeypatch.setattr(backoff, "full_jitter", lambda value: value)
    monkeypatch.setattr(conf, "PAGE_CONCURRENCY", 4)
    monkeypatch.setattr(conf, "READ_AHEAD_AFTER_MS", 20.0)
    real_fault = sandbox._fault

    def fault(position):
        if position >= 285:
            sandbox.faults.latency = 0.06  # slow from here on (the next requests wait 60 ms)
        return real_fault(position)

    monkeypatch.setattr(sandbox, "_fault", fault)
    ids, requests, _ = _scan_with_client(conn, monkeypatch)
    assert ids == sorted(sandbox.ids("customers"))
    assert any(thread != threading.current_thread().name for thread, _ in requests)


def test_after_a_429_and_its_calm_pages_a_slow_store_is_read_ahead_again(woo, monkeypatch, settings):
    # 40 pages: offsets 0, 95, ..., 3705
    sandbox, conn, limited = _slow_store_with_429s(woo, monkeypatch, settings, 3800, 190)
    ids, requests, client = _scan_with_client(conn, monkeypatch)
    assert ids == sorted(sandbox.ids("customers"))
    assert limited == [190] and client.rate_limit_waits == 1
    caller = threading.current_thread().name
    # One 429 shuts the window for 20 pages (read by the consumer itself), then the slow store opens it again.
    later = [offset for thread, offset in requests if thread != caller and offset > 190 + 24 * 95]
    assert later
    assert Counter(offset for _, offset in requests if offset < 3705) == Counter(range(0, 3705, 95))


def test_a_burst_of_429s_inside_the_calm_pages_halves_the_window_once(woo, monkeypatch, settings):
    """The second review's case: a second 429 six pages after the first, while the window is still shut, only
    restarts the calm pages; it does not halve the window again (which would have left the rest serial)."""
    # 50 pages: offsets 0, 95, ..., 4655
    sandbox, conn, limited = _slow_store_with_429s(woo, monkeypatch, settings, 4750, 380, 950)
    ids, requests, client = _scan_with_client(conn, monkeypatch)
    assert ids == sorted(sandbox.ids("customers"))
    assert sorted(limited) == [380, 950] and client.rate_limit_waits == 2
    caller = threading.current_thread().name
    assert any(thread != caller and offset > 950 + 21 * 95 for thread, offset in requests)


# -- an opening is a trial (twenty-second pass: the interpreter lock alone opened the window at 300,000
# customers on SQLite, and a scan read ahead from there on ran up to 15 % slower than inline) --------------


def _pages(window: ReadAhead, clock: list[float], paces_ms, *, wait_ms: float = 0.5, slept: float = 0.0) -> None:
    """Hand ``window`` one page per pace: asked for at the clock's time, read inline (waiting ``wait_ms``) if
    the window is shut, then the clock moves on by the pace. A page's pace is known when the next one is asked
    for, so a trial of N pages is judged as page N + 1 is asked for."""
    for pace in paces_ms:
        window.page(clock[0], slept)
        if not window.size:
            window.inline(wall=wait_ms * MS + 1 * MS, cpu=1 * MS)
        clock[0] += pace * MS


def test_an_opening_that_does_not_pay_shuts_again_and_waits_longer_each_time():
    window, clock = ReadAhead(3, trial=4, hold=5), [100.0]
    _pages(window, clock, [6] * 10)  # a fast scan, inline
    _pages(window, clock, [6], wait_ms=45)  # one page waits for the lock: opened at once
    assert window.size == 3
    _pages(window, clock, [5.5] * 4)  # read ahead no faster
    assert window.size == 3
    _pages(window, clock, [6])  # asking for the next page ends the trial
    assert (window.size, window.trials_failed) == (0, 1)
    _pages(window, clock, [6] * 4, wait_ms=45)  # held inline for 5 pages (that one too), however long they wait
    assert window.size == 0
    _pages(window, clock, [6], wait_ms=45)  # then the usual rule
    assert window.size == 3
    _pages(window, clock, [6] * 5)
    assert (window.size, window.trials_failed) == (0, 2)
    _pages(window, clock, [6] * 9, wait_ms=45)  # twice as long this time
    assert window.size == 0
    _pages(window, clock, [6], wait_ms=45)
    assert window.size == 3


def test_an_opening_that_pays_stays_open_for_the_rest_of_the_fetch():
    window, clock = ReadAhead(3, trial=4), [0.0]
    _pages(window, clock, [55] * 3, wait_ms=50)  # a slow store: three pages in a row over 20 ms
    assert window.size == 3
    _pages(window, clock, [15] * 5)  # ahead, more than 1.5 times as fast
    assert (window.size, window.trials_failed, window._trial_paces) == (3, 0, None)  # judged
    _pages(window, clock, [60] * 20)  # open for good: no second trial
    assert window.size == 3


def test_the_pages_whose_waits_opened_it_do_not_make_reading_ahead_look_faster():
    window, clock = ReadAhead(3, trial=30), [0.0]
    _pages(window, clock, [6] * 27)
    _pages(window, clock, [40] * 3, wait_ms=30)  # three lock stalls in a row open it
    assert window.size == 3
    # Ahead at 5 ms: 1.5 times that is less than the inline mean with the stalls (9.4 ms), more than without.
    _pages(window, clock, [5] * 31)
    assert (window.size, window.trials_failed) == (0, 1)


def test_opened_on_the_first_page_it_has_nothing_to_compare_with_and_stays_open():
    window, clock = ReadAhead(3, trial=2), [0.0]
    _pages(window, clock, [60], wait_ms=55)
    assert window.size == 3
    _pages(window, clock, [60] * 10)  # ahead no faster, but nothing read inline to judge by
    assert (window.size, window.trials_failed) == (3, 0)


def test_a_429_ends_a_trial_unjudged_and_our_sleeps_are_not_the_pace():
    window, clock = ReadAhead(3, trial=3, calm=2), [0.0]
    _pages(window, clock, [6] * 5)
    _pages(window, clock, [6], wait_ms=45)
    _pages(window, clock, [6] * 3)  # three pages of the trial; the third's pace is known at the next page
    window.shut()
    _pages(window, clock, [6] * 10)  # the trial would have failed by now, had it gone on
    assert (window.size, window.trials_failed, window.most) == (0, 0, 1)
    # Inline pages whose time was mostly our own sleeps (2 s each): their pace is what is left.
    slow_sleeper, clock = ReadAhead(3, trial=4), [0.0]
    for i in range(6):
        slow_sleeper.page(clock[0], slept=2.0 * i)
        slow_sleeper.inline(wall=2.001, cpu=1 * MS, slept=2.0)
        clock[0] += 2.006
    assert slow_sleeper._inline_paces and all(p == pytest.approx(0.006) for p in slow_sleeper._inline_paces)


def _recorded_pages(monkeypatch) -> list[tuple[float, float]]:
    """(now, slept) of every page ReadAhead.page is told about, in order."""
    told: list[tuple[float, float]] = []
    real = ReadAhead.page

    def page(self, now, slept=0.0):
        told.append((now, slept))
        return real(self, now, slept)

    monkeypatch.setattr(ReadAhead, "page", page)
    return told


def test_a_scan_whose_read_ahead_does_not_pay_goes_back_inline_and_misses_nothing(woo, monkeypatch):
    """The wiring: each page asked for tells the window (ReadAhead.page), and a window shut after a trial
    leaves the scan inline, every page asked for once and the records all there, in order."""
    sandbox, conn = woo(size=3000)  # 32 pages
    monkeypatch.setattr(conf, "PAGE_CONCURRENCY", 4)
    windows: list[ReadAhead] = []

    def never_pays(most, *, slow):  # every page waits over 1 us: opens after three; trials of 2 never pay
        windows.append(ReadAhead(most, slow=1e-6, at_once=10.0, trial=2, hold=3, gain=1e9))
        return windows[-1]

    monkeypatch.setattr("connectors.woocommerce.resources.ReadAhead", never_pays)
    pages = _recorded_pages(monkeypatch)
    ids, requests = _scan(conn, monkeypatch)
    asked = [now for now, _ in pages]
    assert ids == sorted(sandbox.ids("customers"))
    (window,) = windows
    assert window.trials_failed >= 2
    assert asked == sorted(asked) and len(asked) >= 32
    caller = threading.current_thread().name
    threads = [thread == caller for thread, _ in requests]
    assert threads[:3] == [True] * 3 and not all(threads)  # inline, then ahead ...
    assert any(threads[i] and not threads[i - 1] for i in range(1, len(threads)))  # ... and inline again
    # Each page asked for once, but the last, read again if it was fetched ahead (with the one after it).
    asked_for = Counter(offset for _, offset in requests)
    assert set(asked_for) >= set(range(0, 3000, 95)) and set(asked_for) <= set(range(0, 3000 + 95, 95))
    assert all(asked_for[offset] == 1 for offset in range(0, 2945, 95))


def test_a_store_that_got_slow_just_before_it_opened_is_read_ahead_again_at_once():
    """The review's case: the inline pages a trial is judged against are from before the store slowed down, so
    the trial fails; the pages read inline after it show the store slow, and it opens again, for good."""
    window, clock = ReadAhead(3, trial=10, recheck=5), [0.0]
    _pages(window, clock, [6] * 30)  # fast
    _pages(window, clock, [106], wait_ms=100)  # the store now takes 100 ms a page: opened at once
    assert window.size == 3
    _pages(window, clock, [30] * 11)  # ahead: 30 ms a page, slower than the 6 ms read inline before it
    assert (window.size, window.trials_failed) == (0, 1)
    _pages(window, clock, [106] * 4, wait_ms=100)  # read inline again (held: the usual rule does not open it)
    assert window.size == 0
    _pages(window, clock, [106], wait_ms=100)  # 5 inline paces known: 3 times the trial's pace ahead (>= 2)
    assert (window.size, window.trials_failed, window._trial_paces) == (3, 1, None)
    _pages(window, clock, [6] * 100)  # for good: no trial
    assert window.size == 3
    # The same trial failing on a store that is still fast: the pages after it do not open it again.
    fast, clock = ReadAhead(3, trial=10, recheck=5), [0.0]
    _pages(fast, clock, [6] * 30)
    _pages(fast, clock, [6] * 3, wait_ms=30)  # three lock stalls in a row
    assert fast.size == 3
    _pages(fast, clock, [7] * 11)
    assert (fast.size, fast.trials_failed) == (0, 1)
    _pages(fast, clock, [6] * 50)  # held for 120 pages; the recheck finds nothing slow
    assert fast.size == 0
    # A 429 during the recheck: the calm pages that follow (however slow) do not reopen it.
    calm, clock = ReadAhead(3, trial=10, recheck=5, calm=10), [0.0]
    _pages(calm, clock, [6] * 30)
    _pages(calm, clock, [106], wait_ms=100)
    _pages(calm, clock, [30] * 11)
    assert (calm.size, calm.trials_failed) == (0, 1)
    calm.shut()
    _pages(calm, clock, [106] * 10, wait_ms=100)
    assert calm.size == 0


def test_a_failed_trial_without_a_hold_is_judged_again_not_kept_for_good():
    """The review's case: 'nothing to compare with' meant no inline paces, which a failed trial used to clear;
    with no hold the next opening was then kept for good."""
    window, clock = ReadAhead(3, trial=3, hold=0, recheck=50), [0.0]
    _pages(window, clock, [6] * 10)
    _pages(window, clock, [6], wait_ms=45)  # opened
    _pages(window, clock, [7] * 4)  # judged: no faster
    assert (window.size, window.trials_failed) == (0, 1)
    _pages(window, clock, [6], wait_ms=45)  # opened again at once (no hold): a trial again
    assert window.size == 3 and window._trial_paces == []
    _pages(window, clock, [7] * 4)
    assert (window.size, window.trials_failed) == (0, 2)


def test_the_page_threads_sleeps_are_left_out_of_the_pace(woo, monkeypatch, settings):
    """A transient error's backoff in a page thread is our own sleep, as it is in the consumer's: the seconds
    that thread slept reach ReadAhead.page with the page it fetched."""
    import backoff

    sandbox, conn = woo(size=1900)  # 20 pages
    settings.SYNC_RETRY_BASE_SECONDS = 0.1
    monkeypatch.setattr(backoff, "full_jitter", lambda value: value)
    monkeypatch.setattr(conf, "PAGE_CONCURRENCY", 4)
    monkeypatch.setattr(conf, "READ_AHEAD_AFTER_MS", 0.0)  # ahead from the start
    real_fault, failed = sandbox._fault, []

    def fault(position):
        if position == 950 and not failed:
            failed.append(threading.current_thread().name)
            return sandbox_error(503, "unavailable", "Try again.")
        return real_fault(position)

    monkeypatch.setattr(sandbox, "_fault", fault)
    pages = _recorded_pages(monkeypatch)
    ids, requests, client = _scan_with_client(conn, monkeypatch)
    told = [slept for _, slept in pages]
    assert ids == sorted(sandbox.ids("customers"))
    assert failed and {thread for thread, offset in requests if offset == 950} <= {
        f"woo-customers_{i}" for i in range(4)
    }  # the 503 met a page thread
    assert client.retry_wait_seconds() == 0.0  # the consumer's thread never slept
    assert told == sorted(told) and told[-1] == pytest.approx(0.1)  # told once that page was used, for good
