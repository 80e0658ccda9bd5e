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


class LazyPage(Page):
    """A page whose ``records`` are made on first use by ``load`` (every code path that reads them still gets
    them), for a page whose records may never be needed."""

    def __init__(self, *, load: Callable[[], list[dict]], **fields) -> None:
        object.__setattr__(self, "_load", load)
        object.__setattr__(self, "_records", None)
        super().__init__(records=None, **fields)

    @property
    def records(self) -> list[dict]:  # type: ignore[override]
        if self._records is None:
            object.__setattr__(self, "_records", self._load())
            object.__setattr__(self, "_load", None)  # what it held (a body, a blob) is not needed again
        return self._records

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
    over 10 ms up to 17, over 15 ms never, and no single page over 25 ms. From then on ``most`` pages are kept
    in flight for the rest of the fetch (an upstream that got slow once may again); a wrong opening costs only
    this gain. When the upstream says to slow down (``shut``: the 429s seen since the last page, however many),
    the next ``calm`` pages are read one at a time whatever they wait, and if the window was open, ``most``
    halves (3 -> 1 -> 0): it may open again by the same rule with fewer pages ahead, and after two 429s that
    found it open (with the default 3) never. 429s while it is shut only restart the calm pages. So one burst of 429s
    from a proxy in front of a slow store costs part of the gain, not the rest of a long scan, and a store that
    answers 429 whenever we read ahead ends up with one request at a time. ``slow`` <= 0: ahead from the
    start."""

    def __init__(
        self, most: int, *, slow: float = 0.020, confirm: int = 3, at_once: float | None = None, calm: int = 20
    ) -> None:
        self.most = max(0, most)
        self._calm_pages, self._calm = max(0, calm), 0
        self.size = self.most if slow <= 0 else 0
        self._slow, self._confirm, self._run = slow, confirm, 0
        self._at_once = 2 * slow if at_once is None else at_once
        self.opened_after: list[float] | None = None  # the waits that opened the window (for the log)
        self._waits: deque[float] = deque(maxlen=max(1, confirm))

    def inline(self, wall: float, cpu: float, slept: float = 0.0) -> None:
        """A page fetched in the consumer's thread took ``wall`` seconds, ``cpu`` of them that thread's CPU and
        ``slept`` of them its own sleeps between attempts (not the upstream's latency)."""
        if self.size or not self.most:
            return
        if self._calm:  # just after a 429: these pages do not count
            self._calm -= 1
            return
        wait = wall - cpu - slept
        self._run = self._run + 1 if wait > self._slow else 0
        self._waits.append(wait)
        if self._run >= self._confirm or wait > self._at_once:
            self.size = self.most
            self.opened_after = list(self._waits)

    def shut(self) -> None:
        """The upstream asked us to slow down (a 429): no pages ahead for the next ``calm`` pages, then, if the
        window was open, at most half as many as before (see the class). Pages already in flight are still
        used."""
        if self.size:  # open: halve; a 429 while it is shut (the same burst, or its calm pages) does not
            self.most //= 2
        self.size, self._calm = 0, self._calm_pages
        self._run = 0  # the waits before the 429 do not count towards opening it again
        self._waits.clear()
