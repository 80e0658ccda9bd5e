"""Resource.hash_ignores against the vendors' published records: a field left out of a record's source hash
must be one its mapper never reads, or a change there would be missed (tests/fixtures/vendor/woocommerce:
customer.json and customers_list.json, the WooCommerce REST API docs' examples; see SOURCES.md)."""

from __future__ import annotations

import copy

import pytest

from connectors.woocommerce.resources import Customers
from sync import engine
from tests.vendor_fixtures import load

JUNK = {"meta_data": [{"id": 1, "key": "wc_last_active", "value": "1764892800"}], "_links": {"self": []}}


def _records():
    return [load("woocommerce", "customer"), *load("woocommerce", "customers_list")]


@pytest.mark.parametrize("index", range(3))
def test_the_customers_mapper_reads_none_of_the_fields_its_hash_ignores(index):
    record = _records()[index]
    resource = Customers()
    assert set(resource.hash_ignores) == {"meta_data", "_links"}
    assert set(resource.hash_ignores) <= set(record)  # the published records carry them
    without = {k: v for k, v in record.items() if k not in resource.hash_ignores}
    other = {**copy.deepcopy(record), **JUNK}
    assert resource.map(copy.deepcopy(record)) == resource.map(without) == resource.map(other)


def test_hashed_leaves_the_record_whole_and_drops_only_the_named_top_level_fields():
    record = _records()[0]
    before = copy.deepcopy(record)
    stripped = engine._hashed(record, ("meta_data", "_links"))
    assert record == before  # a copy: the record (a line's payload later) keeps every field
    assert set(record) - set(stripped) == {"meta_data", "_links"}
    assert all(stripped[k] is record[k] for k in stripped)
    assert engine._hashed(record, ("absent",)) == record
    assert engine._hashed(["not", "a", "dict"], ("meta_data",)) == ["not", "a", "dict"]
