"""What one fetch returns and what the engine hands a resource when fetching."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Page:
    records: list[dict]
    next_token: Any = None  # JSON-serialisable; None means this was the last page
    cursor: str | None = None  # the cursor value this page's records reach (committed only after processing)
    total: int | None = None  # total records upstream says exist, when it says
    # Optional: a digest of everything ``records`` was made from (the response body, and whatever picked the
    # records out of it), so that two pages with equal digests hold equal records. The engine then reuses
    # what it derived from those records the last time (sync.services.pagememo: their source hashes)
    # instead of deriving it again. None (the default) promises nothing.
    digest: bytes | None = None
    # Optional, for body memos (FetchContext.known_body): the digest of the response body alone, and the
    # integer id of every record of that body in its order, as little-endian signed 64-bit integers (None when
    # a record has no such id). The engine saves them so that a later full scan that gets the same body again
    # need not parse it (KnownPage).
    body_digest: bytes | None = None
    body_ids: bytes | None = None
    # Optional: makes ``records`` again, equal to them (the same body parsed again, the same way). With it the
    # engine may let a first sync's records go as soon as it has mapped and encoded them, in the thread that
    # parsed them, and read them again only on a path that needs one (a draft or failed line's payload, a group
    # written again). Held instead of the records, a page costs its body's bytes, not a tree of objects that
    # is freed long after it left the CPU's caches. None (the default): the records are kept.
    reload: Callable[[], list[dict]] | None = field(default=None, repr=False, compare=False)


class LazyPage(Page):
    """A page whose ``records`` are made on first use by ``load`` (every code path that reads them still gets
    them), for a page whose records may never be needed."""

    def __init__(self, *, load: Callable[[], list[dict]], **fields) -> None:
        object.__setattr__(self, "_load", load)
        object.__setattr__(self, "_records", None)
        super().__init__(records=None, **fields)

    @property
    def records(self) -> list[dict]:  # type: ignore[override]
        records, load = self._records, self._load
        if records is None and load is not None:  # (None and None: another thread has just loaded them)
            records = load()
            object.__setattr__(self, "_records", records)
            object.__setattr__(self, "_load", None)  # what it held (a body, a blob) is not needed again
        return records if records is not None else self._records

    @records.setter
    def records(self, value) -> None:  # Page.__init__ sets it (to None): the records come from ``load``
        if value is not None:
            object.__setattr__(self, "_records", value)


class KnownPage(LazyPage):
    """A page made from a body the engine has seen before (FetchContext.known_body said its ids), so its body
    was not parsed: ``known_ids`` are the external ids of its records, in order, and ``records`` parses the
    body on first use (``load``). The engine reads only the ids while nothing asks for a record (an unchanged
    record of a later full scan); a resource makes one only where the records carry no cursor of their own
    (``cursor`` is the page's)."""

    def __init__(self, *, known_ids: list[str], load: Callable[[], list[dict]], **fields) -> None:
        object.__setattr__(self, "known_ids", known_ids)
        super().__init__(load=load, **fields)


@dataclass
class FetchContext:
    """What the engine hands a resource when fetching. ``cursor`` is the committed cursor ('' = none)."""

    client: Any  # the connector's Client
    cursor: str
    token: Any
    full_scan: bool
    params: dict = field(default_factory=dict)
    # Set by the engine for a later full scan with body memos (Page.body_ids): the ids saved for a body digest
    # (Page.body_digest), or None. Called from fetch threads; a resource may make a KnownPage of such a body.
    known_body: Callable[[bytes], list[int] | None] | None = None


def _usual_pace(paces) -> float:
    """The mean pace without the slowest tenth of the pages (none of fewer than ten): the pages whose waits
    opened the window are among the inline ones (a lock stall of 40 ms among thirty 6 ms pages made reading
    ahead look 25 % faster than it was), and each side loses as many."""
    kept = sorted(paces)[: len(paces) - len(paces) // 10]
    return sum(kept) / len(kept)


class ReadAhead:
    """Whether a resource fetches pages ahead of its consumer, in threads. Threads hide an upstream's latency,
    but against a fast one they cost more than they hide: a page's own work (the request's Python, the parse)
    holds the interpreter lock in whichever thread it runs, and handing pages between threads adds switches
    (issue 20, a first sync of 100,000 customers against a zero-latency upstream: 3 pages in flight ahead
    against none, 8 interleaved rounds 4.08 -> 3.67 s, CPU 3.48 -> 3.25 s on PostgreSQL; 6 rounds on SQLite
    4.13 -> 3.71 s; docs/performance.md, fifteenth pass).
    So pages are fetched inline, and each tells what it waited beyond its own CPU time and our own sleeps between
    attempts (``slept``: a 429's Retry-After, a transient error's backoff): the upstream's latency, but also any
    wait for the lock while another thread holds it.
    The window opens at once after one page that waited more than ``at_once`` seconds (default twice
    ``slow``), or after ``confirm`` pages in a row that each waited more than ``slow``. The defaults are above
    what the lock alone made a page wait: in 8 runs of 1,053 pages against a zero-latency upstream (PostgreSQL
    and SQLite, whose writer holds the lock longest), 3 pages in a row waited over 5 ms up to 48 times a run,
    over 10 ms up to 17, over 15 ms never, and no single page over 25 ms. But at 300,000 customers on SQLite
    the lock alone opened it in every run (one page waiting 40-138 ms, or three in a row 20-38 ms), and a scan
    read ahead from there on ran up to 29 % slower than inline (docs/performance.md, twenty-second pass).
    So an opening is a trial. ``page``, told as each page is asked for, measures the scan's pace: the seconds
    from one page to the next (the fetch, the consumer's own work and its waits together), our own sleeps
    left out, the page threads' too. After ``trial`` pages ahead the window stays open for the rest of the
    fetch (an upstream that got slow once may again) only if those pages came at least ``gain`` times as fast
    as the last ``trial`` pages read inline (each side's slowest tenth left out: _usual_pace); otherwise it
    shuts, and may open by the usual rule again only after ``hold`` more pages read inline, twice as many
    after each trial that did not pay. A store that got slow just before the opening makes the inline pages
    it is judged against look fast (they were, then), so if the first ``recheck`` pages read inline after a
    failed trial come ``again`` times as slowly as its pages ahead did, it opens again at once, for good.
    Both factors are well above 1 because 60 pages are a noisy sample here (a group of the engine's writes is
    ~30 pages): with ``gain`` 1.2 and 20 pages rechecked at 1.2, 3 runs at 300,000 kept or reopened a false
    opening in each. The price: where the consumer's own work is most of a page's time, reading ahead gains
    less than 1.5 times (a store answering in less than half the consumer's time) and is not kept. Opened on
    the first page there is nothing to compare with: open for good.
    When the upstream says to slow down (``shut``: the 429s seen since the last page, however many), the next
    ``calm`` pages are read one at a time whatever they wait, and if the window was open, ``most`` halves
    (3 -> 1 -> 0): it may open again by the same rule with fewer pages ahead, and after two 429s that found it
    open (with the default 3) never. 429s while it is shut only restart the calm pages. A 429 ends a trial
    unjudged, and a recheck too (its calm pages must not reopen the window). So one burst of 429s from a
    proxy in front of a slow store costs part of the gain, not the rest of a long scan, and a store that
    answers 429 whenever we read ahead ends up with one request at a time. ``slow`` <= 0: ahead from the
    start."""

    def __init__(
        self,
        most: int,
        *,
        slow: float = 0.020,
        confirm: int = 3,
        at_once: float | None = None,
        calm: int = 20,
        trial: int = 60,
        gain: float = 1.5,
        hold: int = 120,
        recheck: int = 60,
        again: float = 2.0,
    ) -> None:
        self.most = max(0, most)
        self._calm_pages, self._calm = max(0, calm), 0
        self.size = self.most if slow <= 0 else 0
        self._slow, self._confirm, self._run = slow, confirm, 0
        self._at_once = 2 * slow if at_once is None else at_once
        self.opened_after: list[float] | None = None  # the waits that opened the window (for the log)
        self._waits: deque[float] = deque(maxlen=max(1, confirm))
        self._trial, self._gain, self._hold_pages, self._hold = max(1, trial), gain, max(0, hold), 0
        self._last: tuple[float, float, bool] | None = None  # the last page asked for: when, sleeps so far, ahead?
        self._inline_paces: deque[float] = deque(maxlen=self._trial)
        self._trial_paces: list[float] | None = None  # while a trial runs; None: not on trial
        self.trials_failed = 0  # openings that did not pay (for the log and tests)
        self._recheck_pages, self._again_factor = max(1, recheck), again
        self._recheck: tuple[float, list[float]] | None = None  # after a failed trial: its pace ahead, inline paces

    def inline(self, wall: float, cpu: float, slept: float = 0.0) -> None:
        """A page fetched in the consumer's thread took ``wall`` seconds, ``cpu`` of them that thread's CPU and
        ``slept`` of them its own sleeps between attempts (not the upstream's latency)."""
        if self.size or not self.most:
            return
        if self._calm:  # just after a 429: these pages do not count
            self._calm -= 1
            return
        if self._hold:  # after a trial that did not pay
            self._hold -= 1
            return
        wait = wall - cpu - slept
        self._run = self._run + 1 if wait > self._slow else 0
        self._waits.append(wait)
        if self._run >= self._confirm or wait > self._at_once:
            self.size = self.most
            self.opened_after = list(self._waits)
            # A trial against the pace of the pages read inline just before (kept across trials); opened on the
            # first page, there is none to compare with: for good.
            self._trial_paces = [] if self._inline_paces else None
            self._recheck = None

    def page(self, now: float, slept: float = 0.0) -> None:
        """A page is asked for at ``now`` (perf_counter seconds), the asking thread having slept ``slept``
        seconds in all between attempts of its requests so far. The time since the page before, less the
        sleeps in between, is the scan's pace over that page, counted as inline or ahead by how the window
        stood when that page was asked for."""
        last = self._last
        if last is not None:
            pace = (now - last[0]) - (slept - last[1])
            if not last[2]:
                self._inline_paces.append(pace)
                if self._recheck is not None:
                    self._again(pace)
            elif self._trial_paces is not None and self.size:  # (shut by a 429 meanwhile: not judged)
                self._trial_paces.append(pace)
                if len(self._trial_paces) >= self._trial:
                    self._judge()
        self._last = (now, slept, bool(self.size))  # as the window stands for this page, judged or not

    def _judge(self) -> None:
        """The end of a trial: open for good if its pages came ``gain`` times as fast as those read inline."""
        ahead, inline = _usual_pace(self._trial_paces), _usual_pace(self._inline_paces)
        self._trial_paces = None
        if ahead * self._gain <= inline:
            return  # it pays: open for the rest of the fetch
        self.trials_failed += 1
        self.size, self._run = 0, 0
        self._waits.clear()
        self._hold = self._hold_pages << (self.trials_failed - 1)
        self._recheck = (ahead, [])

    def _again(self, pace: float) -> None:
        """An inline page's pace after a failed trial: once ``recheck`` of them are in, open again for good if
        they came ``again`` times as slowly as the trial's pages ahead (the store got slow just before)."""
        ahead, paces = self._recheck
        paces.append(pace)
        if len(paces) < self._recheck_pages:
            return
        self._recheck = None
        if _usual_pace(paces) >= ahead * self._again_factor and self.most:
            self.size, self._hold = self.most, 0  # no trial: this was one

    def shut(self) -> None:
        """The upstream asked us to slow down (a 429): no pages ahead for the next ``calm`` pages, then, if the
        window was open, at most half as many as before (see the class). Pages already in flight are still
        used."""
        if self.size:  # open: halve; a 429 while it is shut (the same burst, or its calm pages) does not
            self.most //= 2
        self.size, self._calm = 0, self._calm_pages
        self._recheck = None  # the pages after a 429 tell nothing of the store's pace
        self._run = 0  # the waits before the 429 do not count towards opening it again
        self._waits.clear()
