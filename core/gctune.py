"""Fewer garbage-collector passes while a sync run parses and maps records.

A run allocates millions of short-lived containers (every parsed record is a tree of dicts and lists, every
mapped row another dict) that form no reference cycles: reference counting frees them. CPython's default
(a young-generation pass every 700 allocations, an older one every 10 of those) still walks them, and promotes
the records that happen to be alive during a pass, so the oldest generation, which also holds the whole of
Django, is walked again and again. Measured (docs/performance.md): 9-10 % of an engine run's CPU at 20,000
customers. While at least one run is active in the process, the young generation is collected every
``threshold`` allocations instead; the previous thresholds come back when the last run ends. Cycles are still
collected, later. Thread-safe; nested and concurrent runs share one setting.

The count CPython compares with the threshold is allocations minus deallocations since the last pass, so what
matters is how far the run's live containers swing: a run holds up to three groups of records (the buffer's
two and the one being written) and frees a group at a time. A threshold below that swing costs a pass per
group, each walking every young record (~20 ms); above it, almost none. 50,000 sat just above the bench's
customers of ~10 containers and below real ones with a few more (`wc_last_active` in meta_data, a link's
targetHints): 19-26 passes, 0.45-0.61 s of a 100,000-customer first sync (docs/performance.md, issue 20,
twenty-third pass). An order, with its line items, holds several times a customer's containers.

The price of a high threshold (1,000,000 by default): a young pass, when one comes, walks up to that many
objects with the interpreter lock held for every thread of the process (~70 ms for 1,000,000 live ones,
~150 ms for garbage, measured in review), and what sits in reference cycles (a connection object, a socket) is
released later, for the whole process while any run is active. The count above is CPython's up to 3.13;
3.14's incremental collector counts otherwise: measure again on an upgrade.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_active = 0
_saved: tuple[int, ...] | None = None


@contextlib.contextmanager
def fewer_collections(threshold: int) -> Iterator[None]:
    """Raise the young generation's threshold to ``threshold`` (0 or less: leave the collector alone) for the
    duration of the block."""
    global _active, _saved
    if threshold <= 0:
        yield
        return
    with _lock:
        if _active == 0:
            _saved = gc.get_threshold()
            if _saved[0] and _saved[0] < threshold:  # 0 means the collector is off: keep it so
                gc.set_threshold(threshold, *_saved[1:])
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
