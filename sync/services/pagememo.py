"""Page memos (sync.models.PageMemo): the source hashes of a page's records, by the page's digest.

A run that fetches a page it fetched before (core.paging.Page.digest equal, same mapping revision) takes its
records' hashes from here instead of hashing every record again. Three statements, each one round trip
whatever the number of pages: the look-up of a group's pages, the save of the ones it had to hash, and, after
a complete fetch, the deletion of the resource's memos of pages that fetch did not see (so memos stay about
one per page upstream has).

Body memos (keys beginning with BODY_PREFIX) hold the integer ids of a response body's records, by the body's
digest (core.paging.Page.body_digest / body_ids): read once at the start of a later full scan
(pagememo_bodies), they let the fetch threads skip parsing a body seen before (core.paging.KnownPage). The
engine appends a check to each (sync.engine._body_check); pruning treats both kinds alike.

A memo is the page's hashes as raw bytes (16 each, in the order of the page's identified records; the ids
come from the page itself): 1.6 kB for 100 records, under PostgreSQL's TOAST threshold. The first version
kept a JSON object {id: hex hash} (4.5 kB, compressed and moved out of line), whose save took ~20 ms a group
of ~30 pages of a first sync.
"""

from __future__ import annotations

import hashlib
import sys
from importlib import metadata

import orjson
from django.db import connection as db_connection

from core.revisions import module_source_digest
from sync.models import PageMemo

from .locks import is_postgres

MEMO_VERSION = b"page-memo 2\n"  # part of every key: a change to what a memo holds makes every memo miss


def pagememo_key(revision: bytes, digest: bytes) -> str:
    """The memo key of a page: its digest taken with the memo revision (pagememo_revision)."""
    return hashlib.sha256(MEMO_VERSION + revision + b"\n" + digest).hexdigest()


BODY_PREFIX = "~"  # body memos' keys begin with it (no page memo's key, a hex digest, does)


def _body_prefix(revision: bytes) -> str:
    """BODY_PREFIX and 8 hex digits of the memo revision: a scan reads only its own revision's body memos."""
    return BODY_PREFIX + hashlib.blake2b(MEMO_VERSION + revision, digest_size=4).hexdigest()


def pagememo_body_key(revision: bytes, body_digest: bytes) -> str:
    """The memo key of a response body (core.paging.Page.body_digest), whose memo holds the ids of its records
    (Page.body_ids): a later full scan that gets the same bytes need not parse them (KnownPage)."""
    prefix = _body_prefix(revision)
    digest = hashlib.sha256(MEMO_VERSION + b"body\n" + revision + b"\n" + body_digest).hexdigest()
    return prefix + digest[: 64 - len(prefix)]


def pagememo_bodies(connection_id: int, resource: str, revision: bytes, limit: int) -> dict[str, bytes] | None:
    """The resource's body memos of this memo revision ({key: its ids}), read once at the start of a full scan
    for its fetch threads (which touch no database); None when there are more than ``limit`` (memory stays
    bounded: such a scan parses every page, as without memos)."""
    rows = list(
        PageMemo.objects.filter(
            connection_id=connection_id, resource=resource, digest__startswith=_body_prefix(revision)
        ).values_list("digest", "hashes")[: limit + 1]
    )
    if len(rows) > limit:
        return None
    return {key: bytes(ids) for key, ids in rows}


def _source_digest(name: str) -> bytes:
    # No source at hand (a zipped or frozen module): the name at least.
    return module_source_digest(name) or hashlib.blake2b(name.encode(), digest_size=32).digest()


# What turns a body into records and records into hashes besides the connector's own modules, digested as
# imported (sync.services imports lines, which imports bulk, before this module): a deploy that changes the
# files on disk does not change the revision of a process still running the old code.
_CODE = {name: _source_digest(name) for name in ("sync.bulk", "sync.services.lines", __name__)}
_LIBRARIES = ("orjson", "requests", "urllib3", "charset-normalizer", "chardet")
_REVISIONS: dict[tuple, bytes] = {}


def pagememo_revision(mapping_revision: bytes, *parts: object) -> bytes:
    """What a memo key is taken with: the mapping revision (sync.engine.mapping_revision, which covers the
    resource's own module), and the source of every module that makes a page's records and their hashes:
    the modules of the classes of ``parts`` (the resource and the client: connectors.base's parsing,
    external ids, the connector's paging) with their bases, this engine's hashing and keying, and the
    versions of the parsing libraries and of Python. Without it, a fix to any of those would leave rows
    keyed by the old code's hashes looking unchanged (found by review: a parser change was masked). The
    digests are of the modules as imported where the classes carry one (``source_digest``: connectors.base's
    Client and Resource and their subclasses) and for this engine's own; cached per process."""
    classes = tuple(cls for part in parts for cls in type(part).__mro__ if cls.__module__ != "builtins")
    cached = _REVISIONS.get((mapping_revision, classes))
    if cached is not None:
        return cached
    modules = dict(_CODE)
    for cls in classes:  # a module's digest as its first class here took it at import (source_digest)...
        loaded = cls.__dict__.get("source_digest")
        if isinstance(loaded, bytes):
            modules.setdefault(cls.__module__, loaded)
    for cls in classes:  # ...else its file as it is now
        if cls.__module__ not in modules:
            modules[cls.__module__] = _source_digest(cls.__module__)
    digest = hashlib.blake2b(mapping_revision, digest_size=32)
    for name in sorted(modules):
        digest.update(f"\n{name}\n".encode() + modules[name])
    for library in _LIBRARIES:
        try:
            version = metadata.version(library)
        except metadata.PackageNotFoundError:
            version = "-"
        digest.update(f"\n{library} {version}".encode())
    digest.update(f"\npython {sys.version}".encode())
    _REVISIONS[(mapping_revision, classes)] = cached = digest.digest()
    return cached


def pagememo_lookup(connection_id: int, resource: str, keys: list[str]) -> dict[str, bytes]:
    """The memos of these keys that exist: {key: the page's source hashes, 16 bytes each, in the order of its
    identified records}."""
    if not keys:
        return {}
    rows = PageMemo.objects.filter(connection_id=connection_id, resource=resource, digest__in=keys).values_list(
        "digest", "hashes"
    )
    return {key: bytes(hashes) for key, hashes in rows}


def pagememo_save(connection_id: int, resource: str, memos: dict[str, bytes]) -> None:
    """Save these memos in one statement, replacing any saved under the same key (one the engine could not
    use; a concurrent fetch of the same page saves the same bytes)."""
    if not memos:
        return
    table = db_connection.ops.quote_name(PageMemo._meta.db_table)
    values = ", ".join(["(%s, %s, %s, %s)"] * len(memos))
    sql = (
        f"INSERT INTO {table} (connection_id, resource, digest, hashes) VALUES {values} "  # noqa: S608 (our own table)
        "ON CONFLICT (connection_id, resource, digest) DO UPDATE SET hashes = excluded.hashes"
    )
    params: list = []
    for key, hashes in memos.items():
        params += [connection_id, resource, key, hashes]
    with db_connection.cursor() as cursor:
        cursor.execute(sql, params)


def pagememo_forget_bodies(connection_id: int, resource: str) -> int:
    """Delete the resource's body memos (one did not match its body: sync.engine, KnownBodyMismatch)."""
    return PageMemo.objects.filter(
        connection_id=connection_id, resource=resource, digest__startswith=BODY_PREFIX
    ).delete()[0]


def pagememo_prune(connection_id: int, resource: str, seen: set[str]) -> int:
    """After a complete fetch: delete the resource's memos of pages it did not see. Returns how many."""
    table = db_connection.ops.quote_name(PageMemo._meta.db_table)
    unpack = "SELECT json_array_elements_text(%s::json)" if is_postgres() else "SELECT value FROM json_each(%s)"
    sql = f"DELETE FROM {table} WHERE connection_id = %s AND resource = %s AND digest NOT IN ({unpack})"  # noqa: S608
    with db_connection.cursor() as cursor:
        cursor.execute(sql, [connection_id, resource, orjson.dumps(sorted(seen)).decode()])
        return max(cursor.rowcount, 0)
