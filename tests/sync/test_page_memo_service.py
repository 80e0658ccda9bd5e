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


def test_a_save_of_many_memos_is_one_statement_whose_text_does_not_grow_on_postgres(conn):
    """PostgreSQL: the memos go as two arrays, so the statement's text is the same for 3 memos and for
    300 (psycopg parses a statement's placeholders in Python and caches only short ones); SQLite keeps
    one VALUES row per memo. Every memo saved either way, its bytes intact."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    small = {pagememo_key(b"r", b"s%d" % i): bytes([i]) * 16 for i in range(3)}
    large = {pagememo_key(b"r", b"l%d" % i): bytes([i % 256, 0, 255]) * 5 + b"\x00" for i in range(300)}
    with CaptureQueriesContext(connection) as first:
        pagememo_save(conn.pk, "customers", small)
    with CaptureQueriesContext(connection) as second:
        pagememo_save(conn.pk, "customers", large)
    assert len(first.captured_queries) == len(second.captured_queries) == 1
    if connection.vendor == "postgresql":
        # The captured SQL has the values inlined; the statement's own text is what precedes them.
        head = first.captured_queries[0]["sql"].split(" FROM unnest(")[0]
        assert head == second.captured_queries[0]["sql"].split(" FROM unnest(")[0]
        assert "VALUES" not in second.captured_queries[0]["sql"]
    assert pagememo_lookup(conn.pk, "customers", list(small) + list(large)) == {**small, **large}
