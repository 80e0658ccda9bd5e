"""The page threads' fast paths (WooResource.page_keys and _fresh) give what the per-record way gives."""

from __future__ import annotations

import random

import pytest

from connectors.woocommerce.resources import Customers, Orders

ODD_RECORDS = [
    {"id": 7},
    {"id": "12"},  # int() of the text, as sort_key
    {"id": True},
    {"id": 1.5},
    {"no_id": 1},
    ["not", "an", "object"],
    "text",
    None,
    {"id": "abc"},
    {"id": 1e400},  # inf: OverflowError
    {"id": None},
]


@pytest.mark.parametrize("resource", [Customers(), Orders()])
@pytest.mark.parametrize("odd", ODD_RECORDS, ids=repr)
def test_page_keys_equal_key_or_none(resource, odd):
    page = [{"id": 1}, {"id": 2}, odd, {"id": 9}]
    assert resource.page_keys(page) == [resource.key_or_none(r) for r in page]


def test_an_ordinary_page_is_keyed_without_a_call_per_record(monkeypatch):
    resource = Customers()
    monkeypatch.setattr(Customers, "key_or_none", lambda self, r: pytest.fail("keyed record by record"))
    assert resource.page_keys([{"id": 3}, {"id": 4}]) == [[3], [4]]


def test_an_overridden_sort_key_is_used():
    class ByName(Customers):
        def sort_key(self, record):
            return [record["name"]]

    assert ByName().page_keys([{"id": 1, "name": "b"}]) == [["b"]]


def _fresh_one_by_one(records, keys, last):
    """The per-record rule (_fresh's general path): a keyed record after ``last``; one without a key placed
    by the keyed record before it."""
    fresh, before = [], None
    for record, key in zip(records, keys, strict=True):
        if key is not None:
            before = key
            if last is None or key > last:
                fresh.append(record)
        elif last is None or (before is not None and before > last):
            fresh.append(record)
    return fresh


def test_fresh_equals_the_per_record_rule():
    rng = random.Random(20)
    resource = Customers()
    for _ in range(500):
        ids = sorted(rng.sample(range(1, 60), rng.randint(0, 12)))
        keys: list = [[i] for i in ids]
        for _ in range(rng.choice([0, 0, 1, 2])):  # records without a key, anywhere
            keys.insert(rng.randint(0, len(keys)), None)
        records = [{"n": n} for n in range(len(keys))]
        last = rng.choice([None, [0], [rng.randint(1, 60)], [99]])
        assert resource._fresh(records, keys, last) == _fresh_one_by_one(records, keys, last)


def test_a_page_wholly_behind_the_last_key_keeps_it():
    """A page re-read after a back-off whose records all sort at or before ``last``: nothing is fresh, and the
    next token still carries ``last``, not the page's greatest key."""
    from connectors.base import FetchContext

    records = [{"id": i} for i in range(101, 201)]
    keys = [[i] for i in range(101, 201)]
    page = Customers().step(
        FetchContext(client=None, cursor="", token=None, full_scan=True, params={}),
        {"offset": 95, "last": [250]},
        lambda offset: (records, keys, 1000, None, b"", None, None),
    )
    assert page.records == []
    assert page.next_token["last"] == [250]
