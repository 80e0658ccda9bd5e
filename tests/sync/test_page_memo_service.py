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
    pagememo_save(conn.pk, "customers", {a: b"\x00" * 32, b: b""})
    assert pagememo_lookup(conn.pk, "customers", [a, b, "missing"]) == {a: b"\x00" * 32, b: b""}
    pagememo_save(conn.pk, "customers", {a: b"\xff" * 16})  # saved again (the first could not be used)
    assert pagememo_lookup(conn.pk, "customers", [a, b]) == {a: b"\xff" * 16, b: b""}
    assert pagememo_lookup(conn.pk, "orders", [a]) == {}  # per resource
    assert pagememo_lookup(conn.pk, "customers", []) == {}


def test_keys_depend_on_the_revision_and_the_digest():
    assert pagememo_key(b"r1", b"d") == pagememo_key(b"r1", b"d")
    assert len({pagememo_key(b"r1", b"d"), pagememo_key(b"r2", b"d"), pagememo_key(b"r1", b"e")}) == 3


def test_prune_keeps_the_pages_seen_of_that_resource_only(conn, org, make_connection):
    other = make_connection(org, kind="woocommerce", name="other", base_url="http://127.0.0.1:9/")
    keys = [pagememo_key(b"r", bytes([i])) for i in range(3)]
    pagememo_save(conn.pk, "customers", {k: b"" for k in keys})
    pagememo_save(conn.pk, "orders", {keys[0]: b""})
    pagememo_save(other.pk, "customers", {keys[0]: b""})
    assert pagememo_prune(conn.pk, "customers", {keys[1]}) == 2
    left = set(PageMemo.objects.values_list("connection_id", "resource", "digest"))
    assert left == {(conn.pk, "customers", keys[1]), (conn.pk, "orders", keys[0]), (other.pk, "customers", keys[0])}
