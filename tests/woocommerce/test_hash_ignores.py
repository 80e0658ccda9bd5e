"""Resource.hash_ignores: fields left out of a record's source hash (sync.bulk.source_hash), so a WooCommerce
customer whose ``wc_last_active`` moved (meta_data) is neither mapped nor written again. Checked against the
vendors' published records (tests/fixtures/vendor/woocommerce: customer.json and customers_list.json, the
WooCommerce REST API docs' examples; see SOURCES.md): nothing that runs on an unchanged record's behalf reads an
ignored field; and on every path a record is hashed (a scan with and without page memos, the claimed path a
webhook takes) a visit alone leaves the row as it was."""

from __future__ import annotations

import copy

import pytest

from connectors.base import Resource
from connectors.woocommerce.resources import Customers
from connectors.woocommerce.services import webhook_refetch
from customers.models import Customer
from sync import bulk, services
from sync.models import QueueState
from tests.vendor_fixtures import load

JUNK = {"meta_data": [{"id": 1, "key": "wc_last_active", "value": "1764892800"}], "_links": {"self": []}}
VISIT = [{"id": 9, "key": "wc_last_active", "value": "1764892800"}]


def _records():
    return [load("woocommerce", "customer"), *load("woocommerce", "customers_list")]


class _Guarded(dict):
    """A record that fails the test when an ignored key is read at all, whatever its content."""

    ignored: tuple[str, ...] = ()

    def _check(self, key):
        if key in self.ignored:
            raise AssertionError(f"{key!r} was read, and hash_ignores leaves it out of the hash")

    def __getitem__(self, key):
        self._check(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._check(key)
        return super().get(key, default)

    def __contains__(self, key):
        self._check(key)
        return super().__contains__(key)


@pytest.mark.parametrize("index", range(3))
def test_nothing_run_for_an_unchanged_customer_reads_the_fields_its_hash_ignores(index):
    record = _records()[index]
    resource = Customers()
    assert resource.hash_ignores == ("meta_data", "_links")
    assert set(resource.hash_ignores) <= set(record)  # the published records carry them
    guarded = _Guarded(copy.deepcopy(record))
    guarded.ignored = resource.hash_ignores
    mapped = resource.map(guarded)
    resource.is_deleted(guarded)
    resource.version(guarded)
    resource.external_id(guarded)
    assert mapped == resource.map({**copy.deepcopy(record), **JUNK})


def test_the_source_hash_leaves_out_the_ignored_fields_and_the_record_whole():
    record = _records()[0]
    before = copy.deepcopy(record)
    ignores = Customers.hash_ignores
    visited = {**copy.deepcopy(record), **JUNK}
    assert bulk.source_hash(record, b"r", ignores) == bulk.source_hash(visited, b"r", ignores)
    assert bulk.source_hash(record, b"r", ignores) != bulk.source_hash(record, b"r")
    assert bulk.source_hash({**record, "first_name": "Other"}, b"r", ignores) != bulk.source_hash(record, b"r", ignores)
    assert record == before  # a copy is stripped: the record (a line's payload later) keeps every field
    assert bulk.source_hash(["not", "a", "dict"], b"r", ignores) == bulk.source_hash(["not", "a", "dict"], b"r")


def test_hash_ignores_must_be_a_tuple_of_names():
    with pytest.raises(TypeError, match="tuple of field names"):

        class Wrong(Resource):  # ("meta_data") is a string, not a tuple
            hash_ignores = "meta_data"


def test_a_subclass_reading_records_its_own_way_hashes_them_whole():
    """hash_ignores holds only while nothing run for an unchanged record reads those fields: a subclass with a
    map (or is_deleted, external_id, version, version_field) of its own may read them, so it does not inherit
    its parent's, unless it declares its own; one that reads records as its parent does keeps them."""

    class OwnMap(Customers):
        def map(self, record):
            return {**super().map(record), "extra": record.get("meta_data")}

    class OwnVersion(Customers):
        version_field = "date_modified_gmt"

    class Declared(Customers):
        hash_ignores = ("_links",)

        def map(self, record):
            return super().map(record)

    class Paged(Customers):
        page_size = 50

        def sort_key(self, record):
            return [record["id"]]

    assert Customers.hash_ignores == ("meta_data", "_links")
    assert OwnMap.hash_ignores == () and OwnVersion.hash_ignores == ()
    assert Declared.hash_ignores == ("_links",)
    assert Paged.hash_ignores == Customers.hash_ignores

    class UnderOwnMap(OwnMap):  # reads as OwnMap does: OwnMap's (none)
        page_size = 10

    assert UnderOwnMap.hash_ignores == ()

    class MapMixin:
        def map(self, record):
            return {"email": record.get("email")}

    class Mixed(MapMixin, Customers):  # the mixin's map comes before the class that declared them
        pass

    class MixedAfter(Customers, MapMixin):  # Customers' own map wins: its declaration holds
        pass

    assert Mixed.hash_ignores == () and MixedAfter.hash_ignores == Customers.hash_ignores


# --- the paths a record is hashed on, against the sandbox (found by review) ---------------------------------
def _run(conn, resource="customers", **kw):
    q = services.sync_start(connection=conn, resource=resource, **kw).queue
    q.refresh_from_db()
    return q


def _visit(sandbox, cid) -> None:
    with sandbox.lock:  # what update_user_meta does: meta only, date_modified untouched
        sandbox.data["customers"][cid]["meta_data"] = copy.deepcopy(VISIT)


def _spy(monkeypatch) -> list:
    mapped = []
    real_map = Customers.map
    monkeypatch.setattr(Customers, "map", lambda self, record: mapped.append(record["id"]) or real_map(self, record))
    return mapped


def test_a_webhook_for_a_visit_writes_nothing_and_the_next_scan_agrees(
    woo, monkeypatch, django_capture_on_commit_callbacks
):
    """The claimed path (a webhook's refetch: a line's payload read back from jsonb, then _map) hashes as a
    scan does."""
    sandbox, conn = woo(size=250)
    _run(conn)
    cid = sandbox.ids("customers")[120]
    row = Customer.objects.get(connection=conn, external_id=str(cid))
    _visit(sandbox, cid)
    with django_capture_on_commit_callbacks(execute=True):
        assert webhook_refetch(connection_id=conn.pk, resource="customers", record_id=cid) == "enqueued"
    after = Customer.objects.get(connection=conn, external_id=str(cid))
    assert (after.sync_hash, after.synced_at) == (row.sync_hash, row.synced_at)
    mapped = _spy(monkeypatch)
    q = _run(conn)
    assert q.state == QueueState.DONE and mapped == []
    assert not Customer.objects.filter(connection=conn, synced_at__gte=q.started_at).exists()


def test_without_page_memos_a_visit_is_neither_mapped_nor_written(woo, monkeypatch, settings):
    settings.SYNC_PAGE_MEMO = False
    sandbox, conn = woo(size=250)
    _run(conn)
    cid = sandbox.ids("customers")[120]
    _visit(sandbox, cid)
    mapped = _spy(monkeypatch)
    q = _run(conn)
    assert q.state == QueueState.DONE and q.done_count == 250 and mapped == []
    assert not Customer.objects.filter(connection=conn, synced_at__gte=q.started_at).exists()
