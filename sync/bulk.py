"""Bulk writes for the engine's hot path: COPY on PostgreSQL, Django's bulk_create elsewhere.

Why not bulk_create on PostgreSQL: Django sends a multi-row insert as ``UNNEST(%s::jsonb[], ...)`` and
psycopg builds every array literal in Python (quoting each JSON document with regular expressions); in
the bench profile that was the largest single cost of a sync. COPY streams the same rows through
psycopg's C copy writer. Same rows, same transaction, same constraints; only the wire format differs.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import itertools
import json
import logging
import operator
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings
from django.db import connection as db_connection
from django.db import models, transaction
from django.utils import timezone

log = logging.getLogger(__name__)


def json_bytes(obj) -> bytes:
    """UTF-8 JSON for a jsonb column: orjson (about 15x faster than the standard library on a 1 kB record
    here), falling back to json.dumps for what orjson refuses (integers beyond 64 bits, non-string keys)."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj).encode()


def json_text(obj) -> str:
    """json_bytes as text, for a text COPY (a plain str also skips psycopg's Python-level Jsonb dumper)."""
    return json_bytes(obj).decode()


# PostgreSQL's text and jsonb cannot hold U+0000, though JSON and Python strings can: such a record can be
# neither written nor kept as it is. It fails its own line, whose payload keeps it with U+FFFD instead.
UNSTORABLE_ERROR = (
    "the record contains a NUL character (\\u0000), which PostgreSQL cannot store; "
    "this line keeps a copy with U+FFFD in its place"
)


def unstorable(record) -> bool:
    """True on PostgreSQL for a record holding a NUL character anywhere (keys included)."""
    return db_connection.vendor == "postgresql" and "\\u0000" in json_text(record) and _has_nul(record)


# Such a record's line is named apart, ``unstorable:<random>:<external id>`` (sync.services.lines_add), so a
# later good snapshot of the same id still gets a line of its own; a full scan still counts the id as seen.
UNSTORABLE_LINE_PREFIX = "unstorable:"


# A record the resource could not identify (no usable id) gets a failed line named ``invalid:<n>:<random>``
# (sync.services.lines_add). A full scan that met one cannot tell which row it stood for, so it deletes
# nothing by itself (sinks.TableSink.mark_missing_deleted holds its deletions for a person).
UNIDENTIFIED_LINE_PREFIX = "invalid:"


def unstorable_line_id(external_id: str, nonce: str) -> str:
    return f"{UNSTORABLE_LINE_PREFIX}{nonce}:{external_id}"[:255]


def unstorable_line_record_id(line_id: str) -> str:
    """The external id of the record an unstorable line stands for (see unstorable_line_id)."""
    return line_id.split(":", 2)[2]


def same_record(stored, record) -> bool:
    """Is ``record`` the snapshot a line stored? (A line done on the fetch path stores none: never equal.)"""
    return stored == record


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


def payload_text(payload) -> str:
    """JSON text of a line's payload for COPY; a record PostgreSQL cannot hold is kept with U+FFFD for NUL."""
    text = json_text(payload)
    if "\\u0000" in text and _has_nul(payload):
        text = json_text(without_nul(payload))
    return text


def without_nul(value):
    """``value`` with every NUL character replaced by U+FFFD (for keeping an unstorable record's copy)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nul(v) for v in value]
    return value


def relaxed_allowed() -> bool:
    """May the current transaction commit without waiting for its WAL flush? Only with
    ``SYNC_ASYNC_COMMIT``, on PostgreSQL, in an outermost atomic block (never inside somebody else's
    transaction, which may carry writes that must be durable on return).

    Why it is safe for the engine's page and batch transactions: a PostgreSQL crash can lose only the
    last few hundred milliseconds of commits, always a suffix (WAL is replayed in order, so a later page
    never survives an earlier one), never a torn transaction; a lost page took its fetch token with it and
    is fetched again, a lost batch's lines are still leased and the reaper returns them. No external
    effect hangs on these commits. The queue's settling (cursor, status) keeps a synchronous commit.
    Why: a synchronous commit waited ~4 ms for the disk here, per page of 100 records."""
    return bool(
        settings.SYNC_ASYNC_COMMIT
        and db_connection.vendor == "postgresql"
        and db_connection.in_atomic_block
        and not db_connection.savepoint_ids
    )


def relaxed_commit() -> None:
    """``synchronous_commit=off`` for the current transaction, when relaxed_allowed()."""
    if relaxed_allowed():
        with db_connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _qn(name: str) -> str:
    return db_connection.ops.quote_name(name)


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[tuple], *, binary_types: Sequence[str] = ()) -> None:
    """COPY ``rows`` (already in database form) into ``table``. PostgreSQL only. With ``binary_types`` (one
    psycopg type name a column, see _binary_plan) the COPY is in binary format and the rows hold values of
    those types."""
    cols = ", ".join(_qn(c) for c in columns)
    form = " (FORMAT BINARY)" if binary_types else ""
    # The raw psycopg cursor's errors are psycopg's own: wrap them into Django's (DataError, IntegrityError,
    # OperationalError...) so callers' except clauses see the same exceptions as for any other query.
    with db_connection.cursor() as cursor, db_connection.wrap_database_errors:
        with cursor.cursor.copy(f"COPY {_qn(table)} ({cols}) FROM STDIN{form}") as copy:
            if binary_types:
                copy.set_types(list(binary_types))
            for row in rows:
                copy.write_row(row)


def copy_model_rows(model: type[models.Model], table: str, rows: list[dict]) -> None:
    """COPY ``rows`` (field name or attname -> value, as upsert_rows takes them) into ``table``, which has the
    model's columns: in binary format when every column has a binary form here (_binary_plan) and every value
    is of the exact type that form takes as it is (_to_binary), else in text, as before.

    Why binary: no value is rendered as text in Python, and PostgreSQL parses none back (20,000 customer rows:
    our CPU 4.7-5.8 against 8.9-12.7 us a row, the COPY's wall time 0.15-0.19 against 0.22-0.26 s). Any other
    value (a str for a datetime, an int for a text column, a naive datetime, a decimal that is not finite...)
    sends the whole call through text COPY, so its meaning stays the text path's: Django's preparation and
    PostgreSQL's input parsing, and their errors (tests/sync/test_binary_copy.py)."""
    fields = _layout(model)[0]
    columns = [f.column for f in fields]
    plan = _binary_plan(model)
    merged = list(_merged(model, rows))
    if plan is not None and _to_binary(merged, plan):
        copy_rows(table, columns, merged, binary_types=[kind for kind, _ in plan])
    else:
        copy_rows(table, columns, _prepared(model, merged))


# Fields whose Python value psycopg already writes as the column expects; everything else (JSON, decimals,
# UUIDs, custom fields) goes through Django's get_db_prep_save, exactly as a save() would.
_AS_IS = (models.CharField, models.TextField, models.BooleanField, models.IntegerField, models.DateTimeField)


def _layout(model: type[models.Model]):
    return _layout_for(model, db_connection.vendor)


@functools.cache
def _layout_for(model: type[models.Model], vendor: str):
    """(fields, {name or attname: position}, fields needing preparation) for inserting ``model``."""
    meta = model._meta
    fields = [f for f in meta.concrete_fields if f is not meta.auto_field]
    positions: dict[str, int] = {}
    for i, f in enumerate(fields):
        positions[f.attname] = i
        positions[f.name] = i
    sqlite = vendor != "postgresql"
    prep = []
    for i, f in enumerate(fields):
        if f.is_relation:
            continue
        if isinstance(f, models.JSONField) and f.encoder is None:
            prep.append((i, _prep_json(f)))
        elif sqlite and isinstance(f, models.DateTimeField):
            prep.append((i, _prep_sqlite_datetime(f)))  # stored as text there: Django's form, or comparisons break
        elif isinstance(f, models.DateTimeField):
            prep.append((i, _pg_datetime_text()))
        elif sqlite and isinstance(f, models.IntegerField):
            prep.append((i, functools.partial(_prep_django, f)))  # SQLite would keep a word in an integer column
        elif not isinstance(f, _AS_IS):
            prep.append((i, functools.partial(_prep_django, f)))
    return fields, positions, prep


def _prep_sqlite_datetime(field: models.DateTimeField):
    last: list = [(None, None)]  # _last_formatted's memo, inlined: this runs for every time of every row

    def prep(value):
        if value.__class__ is dt.datetime and value.tzinfo is dt.UTC:
            seen, text = last[0]
            if seen is not value:
                text = value.isoformat(" ")[:-6]  # sqlite_datetime's UTC case
                last[0] = (value, text)
            return text
        if value is None:
            return None
        return sqlite_datetime(value) if isinstance(value, dt.datetime) else _prep_django(field, value)

    return prep


def _pg_datetime_text():
    """A datetime as ISO text for a COPY (PostgreSQL reads it as the column's type, a naive one in the
    session's zone as before): psycopg's own datetime dumper cost about 4 us a value here, 4 values a record
    (the row's times, synced_at, the line's updated_at), against well under 1 us for isoformat."""
    text = _last_formatted(dt.datetime.isoformat)

    def prep(value):
        return text(value) if value.__class__ is dt.datetime else value  # None, or a subclass left to psycopg

    return prep


def _last_formatted(to_text):
    """``to_text`` that remembers the last datetime it was given: the same object again (every row's
    synced_at) is formatted once. Kept as one tuple, so threads sharing a layout never read one value with
    another's text."""
    last: list = [(None, None)]

    def formatted(value):
        seen, text = last[0]
        if seen is not value:
            text = to_text(value)
            last[0] = (value, text)
        return text

    return formatted


def _prep_django(field: models.Field, value):
    if value is None:
        return None  # what get_db_prep_save gives for None (JSON fields, the exception, go through _prep_json)
    return field.get_db_prep_save(value, connection=db_connection)


def _prep_json(field: models.JSONField):
    def prep(value):
        # None keeps Django's own meaning (SQL NULL or JSON null, per the field); the rest is plain JSON
        # (json_text, inlined: three values a customer row).
        if value is None:
            return _prep_django(field, value)
        try:
            return orjson.dumps(value).decode()
        except TypeError:
            return json.dumps(value)

    return prep


def _defaults(fields: list[models.Field], now: dt.datetime | None = None) -> list:
    now = now or timezone.now()
    return [
        now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) else f.get_default() for f in fields
    ]


def source_hash(record, revision: bytes, ignores: tuple[str, ...] = ()) -> str:
    """The hash a synced row keeps of the snapshot it was written from: the record as the upstream sent it
    (keys sorted: a line's payload read back from jsonb comes in jsonb's key order and must hash like the
    same record fetched), less the top-level fields ``ignores`` names (its resource's ``hash_ignores``), and
    the revision of the code that maps it. An equal hash means the row already holds what mapping this record
    would give, so the fetcher skips mapping and writing it, and the guarded upsert writes nothing (invariant
    14). A new mapper revision (sync.engine.mapping_revision) rewrites every row once."""
    if ignores and isinstance(record, dict):
        # Without the top-level fields its resource leaves out (Resource.hash_ignores). A copy and pops,
        # unconditionally: per 100 WooCommerce customers ~220 us with the hash against ~240 us hashing them
        # whole; a filtering comprehension, or first looking for the keys, cost more than it saved.
        record = record.copy()
        for key in ignores:
            record.pop(key, None)
    try:
        blob = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits, non-string keys
        blob = json.dumps(record, sort_keys=True, default=str).encode()
    # SHA-256 over the revision and the record, cut to 128 bits: a fingerprint, not a MAC. On CPUs with SHA
    # instructions it took 1.4 us for a 1.3 kB record here, against 4.1 us for a keyed BLAKE2b. The state
    # after the revision is kept and copied (the same digest as hashing revision + blob, without the copy of
    # the blob: 1.5 against 1.8 us).
    base = _REVISION_STATES.get(revision)
    if base is None:
        if len(_REVISION_STATES) >= 64:  # a handful of resources per process; bounded all the same
            _REVISION_STATES.clear()
        base = _REVISION_STATES[revision] = hashlib.sha256(revision)
    digest = base.copy()
    digest.update(blob)
    return digest.hexdigest()[:32]


_REVISION_STATES: dict[bytes, Any] = {}  # revision -> sha256 state after it (copy() is thread-safe)


def content_hash(values: dict) -> str:
    """A stable hash of a record's mapped values (keys sorted; decimals and the like by their text), for rows
    written without their source record (source_hash is the engine's): equal values hash alike."""
    try:
        blob = orjson.dumps(values, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:  # integers beyond 64 bits, non-string keys
        blob = json.dumps(values, sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


@dataclass(frozen=True)
class Guard:
    """The condition on the upsert's DO UPDATE (invariant 14): the stored row is replaced only by a snapshot
    that is not older (``version``: text that sorts as the declared type; NULL on either side cannot be
    ordered and does not block) and that differs from it (another version, another content ``hash``, or
    the row is marked deleted in ``revive``). A row whose ``hash`` holds ``sealed`` is never replaced (a
    record erased on request: sync.records.ERASED). Checked in the statement itself, so a seal committed
    while a write waits for the row's lock still holds (PostgreSQL re-checks the condition on the locked row)."""

    version: str
    hash: str
    revive: str = ""
    sealed: str = ""


def _guard_sql(model, guard: Guard, table_ref: str) -> str:
    meta = model._meta
    v, h = _qn(meta.get_field(guard.version).column), _qn(meta.get_field(guard.hash).column)
    pg = db_connection.vendor == "postgresql"
    # Byte order, whatever the database's collation (a locale collation may skip punctuation).
    coll = ' COLLATE "C"' if pg else ""
    distinct = "IS DISTINCT FROM" if pg else "IS NOT"
    changed = [f"EXCLUDED.{v} {distinct} {table_ref}.{v}", f"EXCLUDED.{h} {distinct} {table_ref}.{h}"]
    if guard.revive:
        changed.append(f"{table_ref}.{_qn(meta.get_field(guard.revive).column)} IS NOT NULL")
    older = f"COALESCE(EXCLUDED.{v}{coll} < {table_ref}.{v}{coll}, FALSE)"
    sql = f"NOT {older} AND ({' OR '.join(changed)})"
    if guard.sealed:
        if not guard.sealed.isalnum():  # a literal in the statement: our own constant, never data
            raise ValueError(f"seal value must be alphanumeric, not {guard.sealed!r}")
        sql = f"{table_ref}.{h} {distinct} '{guard.sealed}' AND {sql}"
    return sql


def upsert_rows(
    model: type[models.Model],
    rows: list[dict],
    *,
    unique_fields: Sequence[str],
    update_fields: Sequence[str],
    guard: Guard | None = None,
) -> int:
    """INSERT ... ON CONFLICT (unique_fields) DO UPDATE SET update_fields [WHERE guard]. ``rows`` map field
    names (or attnames) to values, missing fields take their defaults, keys must be distinct. Meant for a
    transaction. Rows are written in key order, so two writers upserting overlapping keys take the row
    locks in the same order and cannot deadlock each other. Outside a transaction it opens its own.
    Returns how many rows were inserted or updated (a row the guard kept is not counted)."""
    if not rows:
        return 0
    if db_connection.vendor != "postgresql":
        return _upsert_executemany(model, rows, unique_fields=unique_fields, update_fields=update_fields, guard=guard)
    if not db_connection.in_atomic_block:
        # In autocommit the COPY would commit on its own, and ON COMMIT DELETE ROWS would empty the staging
        # table before the INSERT..SELECT reads it: the rows would be dropped without an error.
        with transaction.atomic():
            return _upsert_copy(model, rows, unique_fields=unique_fields, update_fields=update_fields, guard=guard)
    return _upsert_copy(model, rows, unique_fields=unique_fields, update_fields=update_fields, guard=guard)


def _tuples(model, rows: list[dict]):
    """Each row as the list of its column values in _layout's order, ready for the database."""
    return _prepared(model, _merged(model, rows))


def _prepared(model, merged: Iterable[list]):
    """Rows as _merged gives them, their values prepared for the database (text COPY, SQLite)."""
    prep = _layout(model)[2]
    for out in merged:
        for position, to_db in prep:
            value = out[position]
            if value is not None:  # every preparation gives None for None: no call for it
                out[position] = to_db(value)
        yield out


def _merged(model, rows: list[dict]):
    """Each row as the list of its column values in _layout's order (defaults for the fields it lacks,
    related objects as their keys), not yet prepared for the database."""
    merger, now = _RowMerger(model), timezone.now()
    for row in rows:
        yield merger.merged(row, now)


# The binary kinds whose values must be of exactly this class (a subclass or another type takes the text path).
_EXACT = {"int8": int, "bool": bool, "text": str}  # "text" covers varchar(n): the server checks its length


def _binary_kind(field: models.Field) -> str | None:
    """The binary COPY form of a column (psycopg's type name for set_types), by the database type Django
    declares for its field. A type not listed (int4: psycopg's binary int4 dumper wraps 2**40 to 0 without an
    error; uuid, arrays, ...) keeps the model on text COPY."""
    db_type = (field.db_type(db_connection) or "").lower()
    if field.is_relation:
        return "int8" if db_type == "bigint" else None
    if isinstance(field, models.JSONField):
        # jsonb's binary form is a version byte (1) and the JSON text: sent as bytea, the server's jsonb_recv
        # reads it and parses the text exactly as for text input.
        return "bytea" if field.encoder is None and db_type == "jsonb" else None
    if isinstance(field, models.DateTimeField) and db_type == "timestamp with time zone":
        return "timestamptz"
    if type(field) is models.DecimalField and db_type.startswith("numeric"):
        # Exactly Django's: the text path prepares decimals with the field's own code, which a subclass may
        # change; the binary path sends a Decimal as it is.
        return "numeric"
    if isinstance(field, models.BooleanField) and db_type == "boolean":
        return "bool"
    if isinstance(field, models.BigIntegerField) and db_type == "bigint":
        return "int8"
    if isinstance(field, (models.CharField, models.TextField)) and (db_type == "text" or db_type.startswith("varchar")):
        return "text"
    return None


def _binary_plan(model: type[models.Model]) -> list[tuple[str, models.Field]] | None:
    """(psycopg type, field) for each column of the model, or None when one has no binary form here."""
    if db_connection.vendor != "postgresql" or not settings.SYNC_BINARY_COPY:
        return None
    return _binary_plan_for(model)


@functools.cache
def _binary_plan_for(model: type[models.Model]) -> list[tuple[str, models.Field]] | None:
    plan = []
    for field in _layout(model)[0]:
        kind = _binary_kind(field)
        if kind is None:
            return None
        plan.append((kind, field))
    return plan


_INT8 = range(-(2**63), 2**63)


def _to_binary(merged: list[list], plan: list[tuple[str, models.Field]]) -> bool:
    """Turn rows as _merged gives them into values psycopg's binary dumpers of ``plan``'s types take, in place;
    or return False, the rows untouched, as soon as one value is not of the exact type its column's form takes
    as it is: psycopg would convert it otherwise than the text path, or wrap it, or refuse it with another
    error. Those exact types are what mappers give (str, a real bool, an aware datetime, a finite Decimal, an
    int in int8's range, JSON-able values)."""
    checks = _binary_checks(tuple(plan))
    if not all(checks.exact(out) for out in merged):
        return False
    for out in merged:
        checks.jsonb(out)
    return True


class _BinaryChecks:
    """The per-row half of _to_binary for one binary plan: ``exact`` says whether every value of a row is of
    the exact type its column's binary form takes as it is; ``jsonb`` turns the row's JSON values into
    jsonb's binary form, in place."""

    def __init__(self, plan: tuple[tuple[str, models.Field], ...]) -> None:
        self.exact_types = [(i, _EXACT[kind]) for i, (kind, _) in enumerate(plan) if kind in _EXACT]
        self.int8 = [i for i, (kind, _) in enumerate(plan) if kind == "int8"]
        self.times = [i for i, (kind, _) in enumerate(plan) if kind == "timestamptz"]
        self.numerics = [i for i, (kind, _) in enumerate(plan) if kind == "numeric"]
        self.jsons = [(i, field) for i, (kind, field) in enumerate(plan) if kind == "bytea"]

    def exact(self, out: list) -> bool:
        for position, cls in self.exact_types:
            value = out[position]
            if value.__class__ is not cls and value is not None:
                return False
        for position in self.int8:
            if out[position] is not None and out[position] not in _INT8:
                return False  # psycopg raises OverflowError; the text path gets PostgreSQL's DataError
        for position in self.times:
            # A naive datetime: the text path's ISO text is read in the session's zone.
            value = out[position]
            if value is not None and (value.__class__ is not dt.datetime or value.tzinfo is None):
                return False
        for position in self.numerics:
            # Not NaN or infinite (Django's to_python refuses them on the text path); at most 16,383 places
            # (psycopg's binary limit; the text path lets the server round them to the column's scale).
            value = out[position]
            if value is not None and not (
                value.__class__ is Decimal and value.is_finite() and value.as_tuple().exponent >= -16383
            ):
                return False
        return True

    def jsonb(self, out: list) -> None:
        for position, field in self.jsons:
            value = out[position]
            # None keeps Django's own meaning (SQL NULL or JSON null, per the field); the rest is jsonb's
            # binary form: version 1, then the JSON text (the text path's json_text, as bytes).
            out[position] = _prep_django(field, value) if value is None else b"\x01" + json_bytes(value)


_binary_checks = functools.cache(_BinaryChecks)


class _RowMerger:
    """A row as the list of its column values in _layout's order: defaults filled in (auto_now fields take the
    ``now`` given with the row; the template is rebuilt when another ``now`` comes, and with none each time)
    and related objects given by field name turned into their keys."""

    def __init__(self, model: type[models.Model]) -> None:
        self._model = model
        self._fields, self._positions, _ = _layout(model)
        self._relations = [i for i, f in enumerate(self._fields) if f.is_relation]
        self._now: dt.datetime | None = None
        self._template: list | None = None

    def merged(self, row: dict, now: dt.datetime | None) -> list:
        if self._template is None or now is None or now is not self._now:
            self._template, self._now = _defaults(self._fields, now), now
        out = self._template.copy()
        positions = self._positions
        try:
            for key, value in row.items():
                out[positions[key]] = value
        except KeyError as exc:
            raise TypeError(f"{self._model.__name__} has no field named {exc.args[0]!r}") from None
        for position in self._relations:
            value = out[position]
            if isinstance(value, models.Model):
                out[position] = value.pk
        return out


class RowEncoder(_RowMerger):
    """Encodes new rows of one model into binary COPY rows ahead of their write, in any thread (the engine's
    fetch thread encodes a first sync's rows while the main thread waits on PostgreSQL; insert_encoded then
    sends them as they are). A row is encoded exactly as copy_model_rows' binary path would send it, or not at
    all: ``encode`` returns None for a row with a value of another type, or one it cannot encode (that row's
    group then takes copy_model_rows, and its text path, which raises what it always raised). Build it in a
    thread that may use the database connection (it reads the connection's adapters); one encoder per thread
    (psycopg's transformer keeps state)."""

    @classmethod
    def for_model(cls, model: type[models.Model]) -> RowEncoder | None:
        """An encoder for ``model``, or None where copy_model_rows would not use binary COPY (SQLite
        included: preparing its upsert's values in the fetch thread was measured no faster, that thread
        then being the one the run waits on)."""
        plan = _binary_plan(model)
        if plan is None:
            return None
        try:
            encoder = cls(model, plan)
        except Exception:  # e.g. a psycopg whose internals moved: the rows then go the usual way
            log.warning("cannot encode %s rows ahead; they take the usual COPY", model.__name__, exc_info=True)
            return None
        # Text is encoded as UTF-8 (no connection in the transformer's context): only for a UTF-8 session.
        return encoder if db_connection.connection.info.encoding in ("utf-8", "utf8") else None

    def __init__(self, model: type[models.Model], plan: list[tuple[str, models.Field]]) -> None:
        from psycopg.adapt import AdaptersMap, Transformer
        from psycopg.pq import Format
        from psycopg.types.string import BytesBinaryDumper

        super().__init__(model)
        self._checks = _binary_checks(tuple(plan))
        self._plans: dict[tuple, operator.itemgetter | bool] = {}
        db_connection.ensure_connection()
        adapters = AdaptersMap(db_connection.connection.adapters)
        # The jsonb values go as bytea (see _binary_kind): psycopg's own bytes dumper, in C, rather than the
        # DB-API Binary wrapper's, a Python call per value, which is what bytea's type name finds by default.
        adapters.register_dumper(bytes, BytesBinaryDumper)
        # No connection in the context: text is encoded as UTF-8, the only client encoding Django uses.
        self._tx = Transformer(adapters)
        self._tx.set_dumper_types([adapters.types.get_oid(kind) for kind, _ in plan], Format.BINARY)
        # The row formatter psycopg's own binary Copy.write_row uses (in C with psycopg[binary]); not exported,
        # hence the pinned psycopg version and tests/sync/test_binary_copy.py comparing what gets stored.
        from psycopg._copy_base import format_row_binary

        self._format = format_row_binary

    def encode(self, row: dict, now: dt.datetime | None = None) -> bytes | None:
        """``row`` (field name or attname -> value, as insert_copy takes them) as one binary COPY row."""
        try:
            return self._encoded(self.merged(row, now))
        except Exception:  # the usual path meets the same value and raises where it always has
            return None

    def encode_parts(self, base: dict, values: dict, tail: dict, now: dt.datetime) -> bytes | None:
        """``encode({**base, **values, **tail}, now)`` without building that dict or walking it: the row's
        column list is gathered in C (operator.itemgetter) by a plan made once per shape of the three dicts
        (their keys in order), which resolves once, as the dict and ``merged`` would for each row, which
        value each column takes. For a Woo customer, ~2.3 us against ~4.5 us for building the row dict and
        ``merged`` (the engine's fetch thread encodes every row of a first sync, and that thread is the one
        a first sync waits on)."""
        shape = (tuple(base), tuple(values), tuple(tail))
        plan = self._plans.get(shape)
        if plan is None:
            plan = self._plans[shape] = self._gather_plan(shape)
        if plan is False:  # a key that is no field: encode's TypeError, so the usual path
            return None
        if self._template is None or now is None or now is not self._now:
            self._template, self._now = _defaults(self._fields, now), now
        try:
            out = list(plan((*self._template, *base.values(), *values.values(), *tail.values())))
            for position in self._relations:
                if isinstance(out[position], models.Model):
                    out[position] = out[position].pk
            return self._encoded(out)
        except Exception:
            return None

    def _gather_plan(self, shape: tuple[tuple, tuple, tuple]):
        """For dicts of these keys: an itemgetter picking each column's value out of (template, *base values,
        *values, *tail values), or False when a key is no field. Each source index is what the merged dict
        (later dicts win, a repeated key keeps its first place) and then ``merged`` (later keys win a column,
        a field's name and attname sharing one) leave in that column."""
        sources = list(range(len(self._fields)))  # a column nobody sets keeps its template value
        merged: dict[str, int] = {}
        index = len(self._fields)
        for keys in shape:
            for key in keys:
                merged[key] = index
                index += 1
        for key, source in merged.items():
            position = self._positions.get(key)
            if position is None:
                return False
            sources[position] = source
        if len(sources) == 1:  # itemgetter of one index returns the item, not a tuple
            return lambda values, pick=operator.itemgetter(sources[0]): (pick(values),)
        return operator.itemgetter(*sources)

    def _encoded(self, out: list) -> bytes | None:
        if not self._checks.exact(out):
            return None
        self._checks.jsonb(out)
        data = bytearray()
        self._format(out, self._tx, data)
        return bytes(data)


def insert_encoded(model: type[models.Model], rows: list) -> int:
    """insert_new for rows encoded ahead, in the order given: on PostgreSQL a RowEncoder's COPY rows, on
    SQLite a NewRowEncoder's parameter lists. Inside a transaction. Returns how many rows were inserted."""
    if db_connection.vendor == "postgresql":
        copy_encoded(model._meta.db_table, [f.column for f in _layout(model)[0]], rows)
        return len(rows)
    head, n_columns = _insert_head(model)
    return _execute_values(head, "", n_columns, rows)


class NewRowEncoder:
    """SQLite's counterpart of RowEncoder.encode_parts: ``encode(base, values, key, ext, now)`` gives the row
    ``{**base, **values, key: ext}``'s parameters exactly as insert_new would bind them for that NewRows row
    (_NewRowPreparer, the same code), or None where preparing it raises (its group then takes insert_new,
    which raises what it always raised). Made ahead in a fetch process (sync/fetchproc.py), the writer then
    only binds them. ``base`` is read once per ``now`` (the engine passes one per page), and auto_now fields
    take that ``now``, as RowEncoder's do; one per thread."""

    def __init__(self, model: type[models.Model]) -> None:
        self._model = model
        self._now: object = object()
        self._preparer: _NewRowPreparer | None = None

    def encode(self, base: dict, values: dict, key: str, ext, now: dt.datetime) -> list | None:
        if now is not self._now or self._preparer is None:
            self._preparer, self._now = _NewRowPreparer(self._model, base, key, now), now
        try:
            return self._preparer.row((ext, values))
        except Exception:
            return None


# PostgreSQL's binary COPY file format (docs, "COPY", Binary Format): the 11-byte signature, flags (int32,
# no OIDs) and header extension length (int32, none); the trailer is a field count of -1 (int16).
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"


def copy_encoded(table: str, columns: Sequence[str], rows: list[bytes]) -> None:
    """COPY binary rows encoded beforehand (RowEncoder) into ``table``: one write of the whole stream."""
    cols = ", ".join(_qn(c) for c in columns)
    with db_connection.cursor() as cursor, db_connection.wrap_database_errors:
        with cursor.cursor.copy(f"COPY {_qn(table)} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(b"".join((_COPY_HEADER, *rows, _COPY_TRAILER)))


def _upsert_executemany(
    model, rows, *, unique_fields: Sequence[str], update_fields: Sequence[str], guard: Guard | None = None
) -> int:
    """SQLite: the same statement as on PostgreSQL with the guard's condition on the DO UPDATE, as multi-row
    VALUES statements (Django's bulk_create builds a model instance and compiles every value of every row in
    Python, which was most of a SQLite sync). Not executemany: it releases and retakes the GIL once per row,
    and with the fetch threads parsing meanwhile each retake waited for them (1,000 rows took 46 ms in a run
    against 12 ms alone). Returns the rows inserted or updated."""
    meta = model._meta
    table = _qn(meta.db_table)
    keys = ", ".join(_qn(meta.get_field(name).column) for name in unique_fields)
    sets = ", ".join(f"{_qn(c)} = excluded.{_qn(c)}" for c in (meta.get_field(n).column for n in update_fields))
    head, n_columns = _insert_head(model)
    tail = f" ON CONFLICT ({keys}) DO UPDATE SET {sets}"
    if guard is not None:
        tail += f" WHERE {_guard_sql(model, guard, table)}"
    # Rows in key order, like the COPY path (on SQLite, which locks the whole database, any fixed order would
    # do): sorted as prepared, by the key columns' positions (a C itemgetter; a key built per row in Python
    # took 7 % of a SQLite first sync's main thread).
    positions = _layout(model)[1]
    values = list(_tuples(model, rows))
    try:
        values.sort(key=operator.itemgetter(*(positions[n] for n in unique_fields)))
    except TypeError:  # keys of mixed types, or None: ordered by their text, as before (the database then judges)
        values.sort(key=lambda row: tuple(str(row[positions[n]]) for n in unique_fields))
    return _execute_values(head, tail, n_columns, values)


def _insert_head(model) -> tuple[str, int]:
    """``INSERT INTO table (every column in _layout's order) VALUES `` and how many columns that is."""
    columns = [_qn(f.column) for f in _layout(model)[0]]
    return f"INSERT INTO {_qn(model._meta.db_table)} ({', '.join(columns)}) VALUES ", len(columns)  # noqa: S608


def _execute_values(head: str, tail: str, n_columns: int, values: list[list]) -> int:
    """SQLite: ``head`` + multi-row VALUES + ``tail`` over ``values`` (prepared rows), in chunks the parameter
    limit allows; returns the rows inserted or updated."""
    written = 0
    one = f"({', '.join(['?'] * n_columns)})"
    # One transaction like bulk_create's (in autocommit every row would commit alone). sqlite3's own execute
    # with "?" placeholders: Django's cursor would rewrite a statement of thousands of placeholders each time
    # (and, in DEBUG, keep it in connection.queries with every value inlined); its error mapping stays. So
    # these statements do not show in connection.queries, CaptureQueriesContext or execute_wrapper hooks.
    with transaction.atomic(savepoint=False), db_connection.cursor() as cursor, db_connection.wrap_database_errors:
        db_connection.validate_no_broken_transaction()  # what Django's cursor would check before each statement
        raw = cursor.cursor
        for start, n in _value_chunks(len(values), n_columns, _sqlite_max_params()):
            statement = head + ", ".join([one] * n) + tail
            sqlite3.Cursor.execute(raw, statement, list(itertools.chain.from_iterable(values[start : start + n])))
            written += max(raw.rowcount, 0)
    return written


def _sqlite_max_params() -> int:
    """How many parameters one statement may bind on this SQLite (32,766 by default since 3.32)."""
    db_connection.ensure_connection()
    return db_connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


def _value_chunks(n_rows: int, n_columns: int, max_params: int) -> list[tuple[int, int]]:
    """(start, rows) chunks for multi-row VALUES: sizes are powers of two up to what the parameter limit
    allows (at most 1,024 rows), so a run sees a dozen distinct statements at most and sqlite3's statement
    cache stays small whatever the group sizes."""
    biggest = 1
    while biggest * 2 * n_columns <= max_params and biggest < 1024:
        biggest *= 2
    chunks, start = [], 0
    while start < n_rows:
        size = biggest
        while size > n_rows - start:
            size //= 2
        chunks.append((start, size))
        start += size
    return chunks


def insert_rows(table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Plain INSERT of ``rows`` (already in database form, datetimes as ``sqlite_datetime`` gives them) on
    SQLite: one executemany, where PostgreSQL has COPY (copy_rows)."""
    sql = (
        f"INSERT INTO {_qn(table)} ({', '.join(_qn(c) for c in columns)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    with transaction.atomic(savepoint=False), db_connection.cursor() as cursor:
        cursor.executemany(sql, list(rows))


def sqlite_datetime(value):
    """A datetime as Django stores it in SQLite (naive UTC text), None as None. A UTC value (every one the
    engine makes) directly; anything else through Django's own adapter."""
    if value is None:
        return None
    if value.tzinfo is dt.UTC:
        # The naive value's str() ("YYYY-MM-DD HH:MM:SS[.ffffff]") without building it: 0.8 us less a value.
        return value.isoformat(" ")[:-6]
    return db_connection.ops.adapt_datetimefield_value(value)


def insert_copy(model: type[models.Model], rows: list[dict]) -> int:
    """PostgreSQL: COPY ``rows`` straight into the model's table (no staging, no ON CONFLICT), for rows known
    to be new; a row that exists after all fails the whole COPY with an IntegrityError (the unique
    constraint), rolling back the caller's transaction. Rows go in the order given (TableSink.write sorts them by key,
    the byte order the upsert locks in). Inside a transaction. Returns len(rows)."""
    copy_model_rows(model, model._meta.db_table, rows)
    return len(rows)


class NewRows(Sequence):
    """The rows ``{**base, **values, key: k}`` for each ``(k, values)`` of ``pairs``, as a sequence of dicts,
    built only when read. insert_new takes it like a list of those dicts; on SQLite it prepares each row's
    column values straight from ``values`` instead (_new_row_values): building the dict and merging it into
    the column list cost about a third of the main thread's time in a SQLite first sync (issue 20,
    nineteenth pass in docs/performance.md)."""

    __slots__ = ("base", "key", "pairs")

    def __init__(self, base: dict, key: str, pairs: list[tuple[Any, dict]]) -> None:
        self.base, self.key, self.pairs = base, key, pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._row(pair) for pair in self.pairs[index]]
        return self._row(self.pairs[index])

    def __iter__(self):
        return map(self._row, self.pairs)

    def _row(self, pair: tuple[Any, dict]) -> dict:
        return _new_row(self.base, self.key, pair)


def _new_row(base: dict, key: str, pair: tuple[Any, dict]) -> dict:
    """NewRows' row for ``(key value, values)``: ``{**base, **values, key: key value}``."""
    return {**base, **pair[1], key: pair[0]}


def _new_row_values(model: type[models.Model], rows: NewRows) -> list[list]:
    """What ``list(_tuples(model, list(rows)))`` gives, value for value, without building each row's dict
    (_NewRowPreparer, one row at a time)."""
    preparer = _NewRowPreparer(model, rows.base, rows.key, timezone.now())
    return [preparer.row(pair) for pair in rows.pairs]


class _NewRowPreparer:
    """The SQLite parameters of the rows ``{**base, **values, key: ext}`` (NewRows' rows), made from each
    ``(ext, values)`` without building its dict.

    A template holds the defaults (auto_now fields take ``now``) and ``base``, merged and prepared once; each
    row copies it and sets its key and its values at their columns (a related object as its key, a value
    prepared as _prepared would). A row whose values are not a plain dict, or name a column the base or the
    key also sets (left to the usual merge of the row's dict, which decides between them), or an unknown
    field, and any row whose preparation raises, is made the usual way instead (_RowMerger, then _prepared):
    the same value, or the same exception, as before. (A column the values name twice, by name and by
    attname, takes the later value either way.)"""

    def __init__(self, model: type[models.Model], base: dict, key: str, now: dt.datetime) -> None:
        _, positions, prep = _layout(model)
        self._model, self._base, self._key, self._now = model, base, key, now
        self._merger = _RowMerger(model)
        self._preps = dict(prep)
        self._relations = set(self._merger._relations)
        self._plans: dict[tuple, list | None] = {}
        self._template: list | None = None
        try:
            template = self._usual((None, {}))  # the defaults and base, prepared (the key's column set per row)
        except Exception:
            return  # the usual way for every row: its rows, or its exception
        self._key_at = positions[key]  # the template's merge checked every name of the base and the key
        if self._key_at in self._relations:  # an object there is turned into its key after the merge
            return  # left to the usual way
        self._positions = positions
        self._taken = {positions[name] for name in base} | {self._key_at}
        self._key_prep = self._preps.get(self._key_at)
        self._template = template

    def _usual(self, pair) -> list:
        row = _new_row(self._base, self._key, pair)
        return next(_prepared(self._model, [self._merger.merged(row, self._now)]))

    def row(self, pair: tuple[Any, dict]) -> list:
        ext, values = pair
        template = self._template
        if template is None or values.__class__ is not dict:
            # (a dict subclass may iterate its keys otherwise than values() gives them)
            return self._usual(pair)
        names = tuple(values)
        plan = self._plans.get(names, False)
        if plan is False:
            at = [self._positions.get(name) for name in names]
            plan = self._plans[names] = (
                None
                if self._taken.intersection(at)  # (an unknown field fails its row below; the usual path raises)
                else [(i, self._preps.get(i), i in self._relations) for i in at]
            )
        if plan is None:
            return self._usual(pair)
        row = template.copy()
        key_prep = self._key_prep
        try:
            row[self._key_at] = ext if key_prep is None or ext is None else key_prep(ext)
            for (i, to_db, relation), value in zip(plan, values.values(), strict=True):
                if value is not None:
                    if relation and isinstance(value, models.Model):
                        value = value.pk
                    elif to_db is not None:
                        value = to_db(value)
                row[i] = value
        except Exception:  # the usual way: the row, or the usual path's exception (its first in column order)
            return self._usual(pair)
        return row


def insert_new(model: type[models.Model], rows: list[dict] | NewRows) -> int:
    """Rows known to be new (a connection's first sync: TableSink.write with the engine's ``insert_only``),
    written with no ON CONFLICT: PostgreSQL COPYs them straight into the table (insert_copy), SQLite INSERTs
    them with multi-row VALUES (a NewRows prepared from its values without building its dicts). On SQLite
    the upsert costs more even when nothing conflicts: with foreign keys on (Django turns them on), an upsert
    whose DO UPDATE sets a foreign-key column (the rows' organization) took 1.31 s against 0.84 s for the same
    100,000 new customer rows with a plain INSERT, measured in SQLite alone (docs/performance.md, issue 20,
    seventeenth pass). A row that exists after all fails the statement
    with an IntegrityError (the unique constraint) and marks the caller's transaction for rollback, so none of
    ``rows`` stays. Inside a transaction. Returns how many rows were inserted."""
    if db_connection.vendor == "postgresql":
        return insert_copy(model, list(rows))
    head, n_columns = _insert_head(model)
    values = _new_row_values(model, rows) if isinstance(rows, NewRows) else list(_tuples(model, rows))
    return _execute_values(head, "", n_columns, values)


def _upsert_copy(
    model,
    rows: list[dict],
    *,
    unique_fields: Sequence[str],
    update_fields: Sequence[str],
    guard: Guard | None,
) -> int:
    meta = model._meta
    fields = _layout(model)[0]
    columns = [f.column for f in fields]
    key_columns = [meta.get_field(name).column for name in unique_fields]
    update_columns = [meta.get_field(name).column for name in update_fields]
    table = meta.db_table
    stage = f"_synchub_stage_{table}"[:63]
    cols = ", ".join(_qn(c) for c in columns)
    # A session-local staging table with the target's column types and no constraints. The statement that
    # reads it also empties it, and ON COMMIT DELETE ROWS truncates it in place at commit: temporary tables
    # are never autovacuumed, so dead rows left to accumulate would make every later read scan them all.
    # A rolled-back transaction takes its rows (and the table, if it was created there) with it, hence
    # IF NOT EXISTS every time. Identifiers only, from the model's meta and quoted; no value is formatted in.
    create = (
        f"CREATE TEMP TABLE IF NOT EXISTS {_qn(stage)} ON COMMIT DELETE ROWS "  # noqa: S608
        f"AS SELECT {cols} FROM {_qn(table)} WITH NO DATA"
    )
    # Asked every time (one cheap statement per group of pages): a cache of "exists in this session" could
    # go stale behind our back (a pooled connection reset with DISCARD ALL drops temp tables), and a
    # missing staging table would fail every write of the run.
    with db_connection.cursor() as cursor:
        cursor.execute(create)
    copy_model_rows(model, stage, rows)
    order = ", ".join(_qn(c) for c in key_columns)
    # Rows are locked in byte order of their keys whatever the database's collation: the order Python sorts
    # them in for insert_copy and TableSink.write, so a first sync's plain COPY and an upsert of the same new
    # ids take their locks in one order and cannot deadlock each other.
    text_keys = {
        f.column
        for f in (meta.get_field(n) for n in unique_fields)
        if isinstance(f, (models.CharField, models.TextField))
    }
    by_bytes = ", ".join(_qn(c) + (' COLLATE "C"' if c in text_keys else "") for c in key_columns)
    sets = ", ".join(f"{_qn(c)} = EXCLUDED.{_qn(c)}" for c in update_columns)
    upsert_sql = (
        f"WITH staged AS (DELETE FROM {_qn(stage)} RETURNING {cols}) "  # noqa: S608
        f"INSERT INTO {_qn(table)} ({cols}) SELECT {cols} FROM staged ORDER BY {by_bytes} "
        f"ON CONFLICT ({order}) DO UPDATE SET {sets}"
    )
    if guard is not None:
        upsert_sql += f" WHERE {_guard_sql(model, guard, _qn(table))}"
    with db_connection.cursor() as cursor:
        cursor.execute(upsert_sql)
        return max(cursor.rowcount, 0)
