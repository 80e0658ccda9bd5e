"""bench.prerendered's live store (B1's --live-variant): a day on, the customers who logged in have a new
``wc_last_active`` and nothing else of theirs changed (date_modified included); day 0 is the store as it was."""

from __future__ import annotations

import json

from bench.prerendered import PER_PAGE, Store
from bench.upstream import visited


def _records(store: Store) -> dict[int, dict]:
    return {r["id"]: r for body in store.pages.values() for r in json.loads(body)}


def test_a_day_on_only_the_visitors_last_active_moves():
    store = Store(1000, 0, "/n1000/d0")
    before = _records(store)
    count = store.live(1, 50)  # 5 %
    after = _records(store)
    movers = {i for i in before if before[i] != after[i]}
    assert movers == {i for i in range(1, 1001) if visited(i, 1, 50)}
    assert count == len(movers) and 20 <= count <= 90  # ~50 of 1,000
    for i in movers:
        old, new = before[i], after[i]
        assert {k for k in old if old[k] != new[k]} == {"meta_data"}
        last = {m["key"]: m["value"] for m in new["meta_data"]}["wc_last_active"]
        assert int(last) > int({m["key"]: m["value"] for m in old["meta_data"]}["wc_last_active"])
    assert store.live(0, 0) == 0
    assert _records(store) == before
    assert len(store.pages) >= 1000 // PER_PAGE
