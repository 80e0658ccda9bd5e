"""Page memos (sync.models.PageMemo): the source hashes of a page's records, by the page's digest.

A run that fetches a page it fetched before (core.paging.Page.digest equal, same mapping revision) takes its
records' hashes from here instead of hashing every record again. Three statements, each one round trip
whatever the number of pages: the look-up of a group's pages, the save of the ones it had to hash, and, after
a complete fetch, the deletion of the resource's memos of pages that fetch did not see (so memos stay about
one per page upstream has). The memos are JSON unpacked by the database (json_each_text on PostgreSQL,
json_each on SQLite), as the done lines' ids are (state.LineBlock).
"""

from __future__ import annotations

import hashlib

import orjson
from django.db import connection as db_connection

from sync.models import PageMemo

from .locks import is_postgres

MEMO_VERSION = b"page-memo 1\n"  # part of every key: a change to what a memo holds makes every memo miss


def pagememo_key(revision: bytes, digest: bytes) -> str:
    """The memo key of a page: its digest taken with the mapping revision (new mapping code, new hashes)."""
    return hashlib.sha256(MEMO_VERSION + revision + b"\n" + digest).hexdigest()


def pagememo_lookup(connection_id: int, resource: str, keys: list[str]) -> dict[str, dict[str, str]]:
    """The memos of these keys that exist: {key: {external id: source hash}}. A memo that does not read as
    such an object is left out (its page is hashed again, and its memo replaced)."""
    if not keys:
        return {}
    rows = PageMemo.objects.filter(connection_id=connection_id, resource=resource, digest__in=keys).values_list(
        "digest", "hashes"
    )
    found: dict[str, dict[str, str]] = {}
    for key, text in rows:
        try:
            hashes = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if isinstance(hashes, dict) and all(isinstance(h, str) for h in hashes.values()):
            found[key] = hashes
    return found


def pagememo_save(connection_id: int, resource: str, memos: dict[str, dict[str, str]]) -> None:
    """Save these memos in one statement, replacing any saved under the same key (one the engine could not
    use: garbled, or not its page's ids; a concurrent fetch of the same page saves the same hashes). A memo
    whose ids orjson cannot encode (a lone surrogate) is not saved: that page is simply hashed every time."""
    encoded: dict[str, str] = {}
    for key, hashes in memos.items():
        try:
            text = orjson.dumps(hashes).decode()
        except TypeError:
            continue
        if "\\u0000" not in text:  # PostgreSQL's text cannot hold U+0000 (SQLite's json_each cuts there)
            encoded[key] = text
    if not encoded:
        return
    table = db_connection.ops.quote_name(PageMemo._meta.db_table)
    if is_postgres():
        rows = "json_each_text(%s::json) AS k(key, value)"
        where = ""
    else:
        rows = "json_each(%s) AS k"
        where = " WHERE true"  # SQLite: an INSERT ... SELECT with ON CONFLICT needs a WHERE to parse
    sql = (
        f"INSERT INTO {table} (connection_id, resource, digest, hashes) "  # noqa: S608 (our own table)
        f"SELECT %s, %s, k.key, k.value FROM {rows}{where} "
        "ON CONFLICT (connection_id, resource, digest) DO UPDATE SET hashes = excluded.hashes"
    )
    with db_connection.cursor() as cursor:
        cursor.execute(sql, [connection_id, resource, orjson.dumps(encoded).decode()])


def pagememo_prune(connection_id: int, resource: str, seen: set[str]) -> int:
    """After a complete fetch: delete the resource's memos of pages it did not see. Returns how many."""
    table = db_connection.ops.quote_name(PageMemo._meta.db_table)
    unpack = "SELECT json_array_elements_text(%s::json)" if is_postgres() else "SELECT value FROM json_each(%s)"
    sql = f"DELETE FROM {table} WHERE connection_id = %s AND resource = %s AND digest NOT IN ({unpack})"  # noqa: S608
    with db_connection.cursor() as cursor:
        cursor.execute(sql, [connection_id, resource, orjson.dumps(sorted(seen)).decode()])
        return max(cursor.rowcount, 0)
