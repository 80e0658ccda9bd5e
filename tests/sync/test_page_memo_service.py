"""sync.services.pagememo's three statements on the database under test (PostgreSQL in CI's first leg,
SQLite in its second)."""

from __future__ import annotations

import pytest

from sync.models import PageMemo
from sync.services import pagememo_key, pagememo_lookup, pagememo_prune, pagememo_save

pytestmark = pytest.mark.django_db


@pytest.fixture
def conn(org, make_connection):
    return make_connection(org, kind="woocommerce", base_url="http://127.0.0.1:9/")


def test_saved_memos_come_back_by_key_and_a_second_save_replaces_the_first(conn):
    a, b = pagememo_key(b"rev", b"page a"), pagememo_key(b"rev", b"page b")
    pagememo_save(conn.pk, "customers", {a: {"1": "h1", "2": "h2"}, b: {}})
    assert pagememo_lookup(conn.pk, "customers", [a, b, "missing"]) == {a: {"1": "h1", "2": "h2"}, b: {}}
    pagememo_save(conn.pk, "customers", {a: {"1": "h3"}})  # saved again (the first could not be used)
    assert pagememo_lookup(conn.pk, "customers", [a, b]) == {a: {"1": "h3"}, b: {}}
    assert pagememo_lookup(conn.pk, "orders", [a]) == {}  # per resource
    assert pagememo_lookup(conn.pk, "customers", []) == {}


def test_keys_depend_on_the_revision_and_the_digest():
    assert pagememo_key(b"r1", b"d") == pagememo_key(b"r1", b"d")
    assert len({pagememo_key(b"r1", b"d"), pagememo_key(b"r2", b"d"), pagememo_key(b"r1", b"e")}) == 3


def test_memos_it_cannot_keep_are_not_saved(conn):
    nul, surrogate, fine = (pagememo_key(b"r", bytes([i])) for i in range(3))
    pagememo_save(conn.pk, "customers", {nul: {"a\x00b": "h"}, surrogate: {"\ud800": "h"}, fine: {"1": "h"}})
    assert set(PageMemo.objects.values_list("digest", flat=True)) == {fine}


def test_what_does_not_read_as_a_memo_is_left_out(conn):
    keys = [pagememo_key(b"r", bytes([i])) for i in range(4)]
    for key, text in zip(keys, ["not json", "[1, 2]", '{"1": 5}', '{"1": "h"}'], strict=True):
        PageMemo.objects.create(connection=conn, resource="customers", digest=key, hashes=text)
    assert pagememo_lookup(conn.pk, "customers", keys) == {keys[3]: {"1": "h"}}


def test_prune_keeps_the_pages_seen_of_that_resource_only(conn, org, make_connection):
    other = make_connection(org, kind="woocommerce", name="other", base_url="http://127.0.0.1:9/")
    keys = [pagememo_key(b"r", bytes([i])) for i in range(3)]
    pagememo_save(conn.pk, "customers", {k: {} for k in keys})
    pagememo_save(conn.pk, "orders", {keys[0]: {}})
    pagememo_save(other.pk, "customers", {keys[0]: {}})
    assert pagememo_prune(conn.pk, "customers", {keys[1]}) == 2
    left = set(PageMemo.objects.values_list("connection_id", "resource", "digest"))
    assert left == {(conn.pk, "customers", keys[1]), (conn.pk, "orders", keys[0]), (other.pk, "customers", keys[0])}
