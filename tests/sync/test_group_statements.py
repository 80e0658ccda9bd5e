"""One statement per group where there were one per row (issue 20, fourth pass): the fetcher's done lines go
as one JSON array of ids, the unchanged-snapshot lookup as one JSON object {id: hash}, and SQLite's upserts
as multi-row VALUES in power-of-two chunks. Ids that need quoting or escaping in SQL, JSON or COPY must come
back exactly, on both databases."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.db import connection as db_connection
from django.forms.models import model_to_dict

from connectors.base import Page
from customers.models import Customer
from sync import bulk, engine, services
from sync.engine import run_queue
from sync.models import LineState, QueueState, SyncQueueLine
from sync.sinks import ROW_GUARD, TableSink
from tests import fakes
from tests.sync.conftest import assert_counters_match

ODD_IDS = [
    "o'brien",
    'say "hi"',
    "back\\slash",
    "ünïcödé-東京-🙂",
    "tab\tnew\nline",
    "{}",
    "NULL",
    " spaced ",
    "%s and %(x)s",
    "\\u0041",
]


def full_sync(conn):
    queue = services.sync_start(connection=conn, resource="customers", enqueue=False, full_scan=True).queue
    run_queue(queue.pk)
    queue.refresh_from_db()
    return queue


def test_odd_ids_are_written_on_done_lines_and_found_unchanged_by_the_next_scan(fake_conn, fake_kind, monkeypatch):
    mapped: list[str] = []
    original = fakes.FakeCustomers.map

    def spy(self, record):
        mapped.append(record["id"])
        return original(self, record)

    monkeypatch.setattr(fakes.FakeCustomers, "map", spy)
    fake_kind.__init__(0)
    fake_kind.records = [fake_kind.make(i, id=ext) for i, ext in enumerate(ODD_IDS, start=1)]

    first = full_sync(fake_conn)
    assert first.state == QueueState.DONE
    lines = SyncQueueLine.objects.filter(queue=first)
    assert sorted(lines.values_list("external_id", flat=True)) == sorted(ODD_IDS)
    assert set(lines.values_list("state", flat=True)) == {LineState.DONE}
    assert all(payload == {} for payload in lines.values_list("payload", flat=True))  # a LineBlock keeps none
    rows = dict(Customer.objects.filter(connection=fake_conn).values_list("external_id", "synced_at"))
    assert sorted(rows) == sorted(ODD_IDS)
    assert_counters_match(first)

    # Nothing changed upstream: every id must be found unchanged (so not even mapped), no row written again.
    mapped.clear()
    second = full_sync(fake_conn)
    assert mapped == [], "records whose row holds the same snapshot were mapped: their ids were not matched"
    assert second.state == QueueState.DONE and second.done_count == len(ODD_IDS)
    again = dict(Customer.objects.filter(connection=fake_conn).values_list("external_id", "synced_at"))
    assert again == rows, "an unchanged record was written again: its id was not matched"

    # One record changes: only it is mapped, only its row is written.
    mapped.clear()
    fake_kind.records[2] = fake_kind.make(3, id=ODD_IDS[2], first_name="Changed", version=99)
    third = full_sync(fake_conn)
    assert third.state == QueueState.DONE
    after = dict(Customer.objects.filter(connection=fake_conn).values_list("external_id", "synced_at"))
    assert mapped == [ODD_IDS[2]]
    assert [ext for ext in ODD_IDS if after[ext] != rows[ext]] == [ODD_IDS[2]]
    assert Customer.objects.get(connection=fake_conn, external_id=ODD_IDS[2]).first_name == "Changed"


@pytest.mark.parametrize("rows", [0, 1, 2, 3, 7, 64, 1000, 1025, 5000])
@pytest.mark.parametrize("columns,limit", [(22, 32766), (22, 999), (22, 50), (3, 250000)])
def test_value_chunks_cover_every_row_once_in_order_within_the_parameter_limit(rows, columns, limit):
    chunks = bulk._value_chunks(rows, columns, limit)
    assert [start for start, _ in chunks] == [sum(n for _, n in chunks[:i]) for i in range(len(chunks))]
    assert sum(n for _, n in chunks) == rows
    for _, n in chunks:
        assert n >= 1 and n & (n - 1) == 0, "not a power of two"
        assert n <= 1024 and (n * columns <= limit or n == 1)
    assert len({n for _, n in chunks}) <= 11  # a dozen distinct statements at most


def test_sqlite_upserts_split_into_chunks_keep_every_row_and_the_guard(fake_conn, monkeypatch):
    """Chunks of two rows (a tiny parameter limit) must write what one statement would, count what they
    wrote, and keep the guard: an equal snapshot writes nothing, an older one never replaces a newer."""
    n_columns = len(bulk._layout(Customer)[0])
    monkeypatch.setattr(bulk, "_sqlite_max_params", lambda: 2 * n_columns + 1)

    def rows(version: int, names: dict[int, str] | None = None):
        return [
            {
                "organization_id": fake_conn.organization_id,
                "connection_id": fake_conn.pk,
                "external_id": str(i),
                "email": f"c{i}@example.com",
                "first_name": (names or {}).get(i, f"First{i}"),
                "sync_version": f"{version:020d}",
                "sync_hash": f"h{version}-{(names or {}).get(i, '')}",
            }
            for i in range(1, 8)
        ]

    def upsert(batch):
        return bulk.upsert_rows(
            Customer, batch, unique_fields=["connection", "external_id"], update_fields=["first_name"], guard=ROW_GUARD
        )

    assert upsert(rows(5)) == 7
    assert Customer.objects.filter(connection=fake_conn).count() == 7
    assert upsert(rows(5)) == 0, "an equal snapshot was written again"
    assert upsert(rows(6, {3: "Newer"})) == 7  # every hash changed with the version
    assert Customer.objects.get(connection=fake_conn, external_id="3").first_name == "Newer"
    assert upsert(rows(4, {3: "Older"})) == 0, "an older snapshot replaced a newer one"
    assert Customer.objects.get(connection=fake_conn, external_id="3").first_name == "Newer"


# --- a first sync inserts without an upsert, on either database (bulk.insert_new) -----------------------------
_INSERT_VALUES = {
    "text": {"first_name": 'F "quoted" \\ ñ 東京 🙂', "last_name": "o'brien", "company": "%s and %(x)s"},
    "json": {"billing": {"city": "Ñuñoa", "n": 7, "nested": [None, True, 1.5, {"k": "v"}]}, "extra": {}},
    "bool and decimal": {"is_paying_customer": True, "loyalty_balance": Decimal("12.125")},
    "times": {
        "upstream_created_at": dt.datetime(2024, 5, 1, 10, 30, 15, 123456, tzinfo=dt.UTC),
        "upstream_updated_at": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
        "deleted_at": None,
    },
    "bookkeeping": {"sync_version": "00000000000000000042", "sync_hash": "ab" * 16},
}


@pytest.mark.parametrize("values", _INSERT_VALUES.values(), ids=_INSERT_VALUES.keys())
def test_a_plain_insert_stores_what_the_upsert_stores(org, make_connection, values, monkeypatch):
    """insert_new (a first sync's rows) and upsert_rows (every other write) must leave the same row; chunked
    by a tiny parameter limit on SQLite, so the multi-row VALUES are split as a big group's would be."""
    n_columns = len(bulk._layout(Customer)[0])
    monkeypatch.setattr(bulk, "_sqlite_max_params", lambda: 2 * n_columns + 1)
    inserted, upserted = (
        make_connection(org, kind="fake", name="inserted"),
        make_connection(org, kind="fake", name="up"),
    )

    def rows(conn):
        return [
            {
                "organization_id": org.pk,
                "connection_id": conn.pk,
                "synced_at": dt.datetime(2026, 12, 4, 16, 0, tzinfo=dt.UTC),
                "external_id": str(i),
                "email": f"c{i}@example.com",
                **values,
            }
            for i in range(1, 6)
        ]

    with transaction.atomic():
        assert bulk.insert_new(Customer, rows(inserted)) == 5
        written = bulk.upsert_rows(
            Customer, rows(upserted), unique_fields=["connection", "external_id"], update_fields=sorted(values)
        )
        assert written == 5
    # And what Django itself stores for the same values (insert_new and upsert_rows share their preparation).
    by_orm = make_connection(org, kind="fake", name="orm")
    for row in rows(by_orm):
        Customer.objects.create(**row)

    def stored(conn):
        return {
            c.external_id: model_to_dict(c, exclude=("id", "connection"))
            for c in Customer.objects.filter(connection=conn)
        }

    assert len(stored(inserted)) == 5
    assert stored(inserted) == stored(upserted) == stored(by_orm)


def test_a_plain_insert_of_a_row_already_there_is_refused_and_writes_none_of_its_rows(fake_conn, org):
    """insert_new has no ON CONFLICT: a row that exists fails the statement with the unique constraint's
    IntegrityError (which sends the engine's group to the upsert, _store_retry), and the group's other rows
    go with the rolled-back transaction."""
    Customer.objects.create(organization=org, connection=fake_conn, external_id="2", email="there@example.com")

    def row(i):
        return {"organization_id": org.pk, "connection_id": fake_conn.pk, "external_id": str(i), "email": f"{i}@x.io"}

    with pytest.raises(IntegrityError), transaction.atomic():
        bulk.insert_new(Customer, [row(1), row(2), row(3)])
    assert list(Customer.objects.filter(connection=fake_conn).values_list("external_id", "email")) == [
        ("2", "there@example.com")
    ]


@pytest.mark.django_db(transaction=True)
def test_a_refused_first_sync_insert_is_written_again_by_the_upsert_as_a_worker_runs_it(
    fake_conn, fake_kind, org, monkeypatch
):
    """As in production (no test transaction around it: the group's atomic is the outermost one), and with the
    conflict in a later chunk of the statement (a tiny parameter limit): the refused insert leaves nothing
    behind, the group is written again by the guarded upsert, and the newer row a webhook wrote is kept."""
    n_columns = len(bulk._layout(Customer)[0])
    monkeypatch.setattr(bulk, "_sqlite_max_params", lambda: 2 * n_columns + 1)
    make = fake_kind.make
    fake_kind.__init__(0)
    q = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    runner = engine.QueueRunner(q)
    assert runner._take_fetch_lease()
    runner._known_rows = False  # as fetch() finds it for a connection without rows
    inserts: list[int] = []
    real_new = bulk.insert_new
    monkeypatch.setattr(bulk, "insert_new", lambda model, rows: inserts.append(len(rows)) or real_new(model, rows))
    assert not db_connection.in_atomic_block
    runner._store_pages([Page([make(1), make(2)], next_token=1)])
    Customer.objects.create(
        organization=org, connection=fake_conn, external_id="5", email="hook@example.com", sync_version="9" * 30
    )
    assert runner._store_pages([Page([make(3), make(4), make(5)], next_token=None)]) == 0
    assert not db_connection.in_atomic_block
    assert inserts == [2, 3] and runner._known_rows, "the second group's insert was tried, refused, then upserted"
    rows = Customer.objects.filter(connection=fake_conn)
    assert sorted(rows.values_list("external_id", flat=True)) == ["1", "2", "3", "4", "5"]
    assert rows.get(external_id="5").email == "hook@example.com", "the newer row is kept"
    assert set(SyncQueueLine.objects.filter(queue=q).values_list("state", flat=True)) == {LineState.DONE}
    assert_counters_match(q)


def test_a_first_sync_inserts_and_the_next_one_upserts(fake_conn, fake_kind, monkeypatch):
    """A connection's first sync writes with insert_new (no ON CONFLICT in the statement SQLite runs: there
    an upsert setting a foreign-key column cost ~4.7 us a row more with nothing to conflict with); the next
    sync, with a changed record, goes through the guarded upsert."""
    calls: list[tuple[str, int]] = []
    real_new, real_encoded, real_upsert = bulk.insert_new, bulk.insert_encoded, bulk.upsert_rows
    # On PostgreSQL a first sync's rows are encoded in the fetch thread and COPYed by insert_encoded.
    monkeypatch.setattr(
        bulk, "insert_encoded", lambda model, rows: calls.append(("insert", len(rows))) or real_encoded(model, rows)
    )
    monkeypatch.setattr(
        bulk, "insert_new", lambda model, rows: calls.append(("insert", len(rows))) or real_new(model, rows)
    )
    monkeypatch.setattr(
        bulk,
        "upsert_rows",
        lambda model, rows, **kw: calls.append(("upsert", len(rows))) or real_upsert(model, rows, **kw),
    )
    statements: list[str] = []
    if db_connection.vendor == "sqlite":
        db_connection.ensure_connection()
        db_connection.connection.set_trace_callback(statements.append)
    fake_kind.__init__(6)
    try:
        assert full_sync(fake_conn).done_count == 6
        first, calls[:] = list(calls), []
        first_statements, statements[:] = list(statements), []
        fake_kind.records[2] = fake_kind.make(3, first_name="Changed", version=99)
        assert full_sync(fake_conn).done_count == 6
    finally:
        if db_connection.vendor == "sqlite":
            db_connection.connection.set_trace_callback(None)
    assert first == [("insert", 6)]
    assert calls == [("upsert", 1)]
    assert Customer.objects.get(connection=fake_conn, external_id="3").first_name == "Changed"
    if db_connection.vendor == "sqlite":
        table = Customer._meta.db_table
        inserts = [sql for sql in first_statements if sql.startswith(f'INSERT INTO "{table}"')]
        assert inserts and not any("ON CONFLICT" in sql for sql in inserts), inserts
        upserts = [sql for sql in statements if sql.startswith(f'INSERT INTO "{table}"')]
        assert upserts and all("ON CONFLICT" in sql for sql in upserts), upserts


def test_upsert_keys_of_mixed_types_are_written_or_refused_by_the_database_never_a_sort_error(fake_conn):
    """The SQLite upsert sorts its prepared rows by the key columns (a C itemgetter); keys that do not compare
    (an int next to a text, a missing one) fall back to their text, as before, and the database judges them:
    two rows written, and a missing key refused by its constraint, not a TypeError from the sort."""
    from django.db import IntegrityError, transaction

    def row(ext):
        return {
            "organization_id": fake_conn.organization_id,
            "connection_id": fake_conn.pk,
            "external_id": ext,
            "email": f"c{ext}@example.com",
        }

    def upsert(batch):
        with transaction.atomic():
            return bulk.upsert_rows(
                Customer, batch, unique_fields=["connection", "external_id"], update_fields=["email"]
            )

    assert upsert([row(5), row("6")]) == 2
    assert sorted(Customer.objects.filter(connection=fake_conn).values_list("external_id", flat=True)) == ["5", "6"]
    with pytest.raises(IntegrityError):
        upsert([row(None), row("7")])


# --- a first sync maps in the fetch thread (QueueRunner._map_early) ------------------------------------------
def test_a_first_sync_maps_each_record_once_in_the_fetch_thread_and_a_later_sync_in_the_main_one(
    fake_conn, fake_kind, monkeypatch
):
    calls: list[tuple[str, str]] = []
    original = fakes.FakeCustomers.map

    def spy(self, record):
        calls.append((str(record["id"]), threading.current_thread().name))
        return original(self, record)

    monkeypatch.setattr(fakes.FakeCustomers, "map", spy)
    fake_kind.__init__(25)
    first = full_sync(fake_conn)
    assert first.state == QueueState.DONE and first.done_count == 25
    assert sorted(ext for ext, _ in calls) == sorted(str(i) for i in range(1, 26)), "each record mapped once"
    assert {name.split("-")[0] for _, name in calls} == {"fetch"}, calls  # the producer thread: fetch-queue-N
    assert Customer.objects.get(connection=fake_conn, external_id="7").first_name == "First7"

    # Rows exist now: records are hashed and compared first, and only the changed one is mapped, by the
    # main thread (mapping ahead would map the unchanged ones for nothing).
    calls.clear()
    fake_kind.records[6] = fake_kind.make(7, first_name="Seventh", version=70)
    second = full_sync(fake_conn)
    assert second.state == QueueState.DONE
    assert [ext for ext, _ in calls] == ["7"]
    assert not calls[0][1].startswith("fetch"), calls
    assert Customer.objects.get(connection=fake_conn, external_id="7").first_name == "Seventh"


def test_a_first_sync_keeps_the_last_snapshot_of_an_id_and_leaves_nothing_mapped_behind(fake_conn, fake_kind):
    fake_kind.__init__(12)
    fake_kind.records.append(fake_kind.make(3, first_name="Later", version=40))  # id 3 again, newer
    queue = services.sync_start(connection=fake_conn, resource="customers", enqueue=False, full_scan=True).queue
    runner = engine.QueueRunner(queue)
    runner.run()
    queue.refresh_from_db()
    assert queue.state == QueueState.DONE
    assert Customer.objects.get(connection=fake_conn, external_id="3").first_name == "Later"
    assert Customer.objects.filter(connection=fake_conn).count() == 12
    assert runner._early == {}, "mapped records were left behind"
    assert_counters_match(queue)


def test_an_id_holding_a_nul_keeps_its_whole_id_and_its_row_survives_the_next_full_scan(
    fake_conn, fake_kind, monkeypatch
):
    """SQLite's json_each cuts a string short at U+0000: such an id must not reach it (its done line would
    name another id, and the next full scan would mark the row missing). PostgreSQL cannot store it at all:
    the record fails its own line there (it used to fail the whole run), and its neighbours are written."""
    monkeypatch.setattr(fakes.FakeCustomers, "mark_missing_deleted", True)
    fake_kind.__init__(0)
    nul_id = "a\x00b"
    fake_kind.records = [fake_kind.make(1, id="plain"), fake_kind.make(2, id=nul_id), fake_kind.make(3, id="a")]
    first = full_sync(fake_conn)
    assert Customer.objects.get(connection=fake_conn, external_id="plain").deleted_at is None
    assert Customer.objects.get(connection=fake_conn, external_id="a").deleted_at is None
    if db_connection.vendor == "sqlite":
        assert first.state == QueueState.DONE
        assert SyncQueueLine.objects.filter(queue=first, external_id=nul_id, state=LineState.DONE).exists()
    else:  # its own failed line (before, the id failed the whole run), the copy kept with U+FFFD
        assert first.state == QueueState.PARTIAL and first.done_count == 2
        failed = SyncQueueLine.objects.get(queue=first, state=LineState.FAILED)
        assert "NUL" in failed.last_error and failed.payload["id"] == "a\ufffdb"
    second = full_sync(fake_conn)
    assert second.state in (QueueState.DONE, QueueState.PARTIAL)
    assert not Customer.objects.filter(connection=fake_conn, deleted_at__isnull=False).exists(), (
        "a record still upstream was marked deleted"
    )
    if db_connection.vendor == "sqlite":
        assert Customer.objects.get(connection=fake_conn, external_id=nul_id).deleted_at is None


# --- a first sync's rows are encoded for COPY in the fetch thread (TableSink.row_encoder) --------------------
def _rich(record: dict) -> dict:
    """Values of every binary COPY form (text, bool, int8, numeric, timestamptz, jsonb)."""
    n = int(record["id"])
    return {
        "email": record["email"],
        "first_name": f'F{n} "quoted" \\ ñ',
        "billing": {"city": "Ñuñoa", "n": n, "nested": [None, True, 1.5]},
        "is_paying_customer": n % 2 == 0,
        "loyalty_balance": Decimal(f"{n}.125"),
        "upstream_created_at": dt.datetime(2024, 5, 1, n % 24, tzinfo=dt.UTC),
    }


@pytest.mark.postgres
def test_a_first_sync_encodes_its_rows_in_the_fetch_thread_and_stores_what_the_main_thread_would(
    org, make_connection, fake_kind, monkeypatch
):
    monkeypatch.setattr(fakes.FakeCustomers, "map", lambda self, record: _rich(record))
    encoders, writes = [], []
    real_for_model, real_insert = bulk.RowEncoder.for_model, bulk.insert_encoded

    def for_model(model):
        encoder = real_for_model(model)
        real_parts = encoder.encode_parts  # what TableSink.row_encoder calls (encode for values without a hash)

        def encode_parts(*args):
            encoders.append(threading.current_thread().name)
            return real_parts(*args)

        encoder.encode_parts = encode_parts
        return encoder

    monkeypatch.setattr(bulk.RowEncoder, "for_model", for_model)
    monkeypatch.setattr(
        bulk, "insert_encoded", lambda model, rows: writes.append(len(rows)) or real_insert(model, rows)
    )
    fake_kind.__init__(30)
    encoded_conn = make_connection(org, kind="fake", name="encoded")
    encoded_queue = full_sync(encoded_conn)
    assert encoded_queue.done_count == 30
    # synced_at: when the row's page was prepared, within the run
    for synced_at in Customer.objects.filter(connection=encoded_conn).values_list("synced_at", flat=True):
        assert encoded_queue.started_at <= synced_at <= encoded_queue.finished_at
    assert len(encoders) == 30 and {name.split("-")[0] for name in encoders} == {"fetch"}, encoders
    assert sum(writes) == 30, "every group went out as the rows encoded ahead"

    # The same records without encoding ahead: the main thread's binary COPY (copy_model_rows).
    monkeypatch.setattr(TableSink, "row_encoder", lambda self, run: None)
    plain_conn = make_connection(org, kind="fake", name="plain")
    assert full_sync(plain_conn).done_count == 30
    assert sum(writes) == 30

    def rows(conn):
        return {
            c.external_id: model_to_dict(c, exclude=("id", "connection", "synced_at"))
            for c in Customer.objects.filter(connection=conn)
        }

    assert rows(encoded_conn) == rows(plain_conn)
    assert rows(encoded_conn)["7"]["billing"] == {"city": "Ñuñoa", "n": 7, "nested": [None, True, 1.5]}


@pytest.mark.postgres
def test_a_group_holding_a_row_the_encoder_refuses_goes_the_main_threads_way(fake_conn, fake_kind, monkeypatch):
    """A value of another type than the binary form takes (here a naive datetime, which the text path reads
    in the session's zone) is not encoded ahead; its group takes copy_model_rows, and its text COPY."""

    def mapper(self, record):
        values = _rich(record)
        if record["id"] == 5:
            values["upstream_created_at"] = dt.datetime(2024, 5, 1, 10, 0)  # naive
        return values

    monkeypatch.setattr(fakes.FakeCustomers, "map", mapper)
    inserted, encoded = [], []
    real_insert, real_encoded = bulk.insert_copy, bulk.insert_encoded
    monkeypatch.setattr(bulk, "insert_copy", lambda model, rows: inserted.append(len(rows)) or real_insert(model, rows))
    monkeypatch.setattr(bulk, "insert_encoded", lambda model, r: encoded.append(len(r)) or real_encoded(model, r))
    fake_kind.__init__(8)
    assert full_sync(fake_conn).done_count == 8
    assert sum(inserted) + sum(encoded) == 8 and sum(inserted) >= 1, (inserted, encoded)
    row = Customer.objects.get(connection=fake_conn, external_id="5")
    assert row.upstream_created_at == dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)  # the session's zone: UTC


# --- the fetcher waits briefly for a group to fill (SYNC_FETCH_GROUP_WAIT_MS) ------------------------------
@pytest.mark.parametrize(("wait_ms", "one_group"), [(0, False), (5000, True)])
def test_pages_arriving_within_the_group_wait_are_stored_together(
    fake_conn, fake_kind, monkeypatch, settings, wait_ms, one_group
):
    """Pages arriving 40 ms apart: without a wait the first is stored alone as soon as it arrives; with one,
    every page of the run goes into one group (one transaction, one set of round trips)."""
    import time

    settings.SYNC_FETCH_GROUP_WAIT_MS = wait_ms
    real_fetch = fakes.FakeCustomers.fetch_page

    def slow(self, ctx):
        time.sleep(0.04)
        return real_fetch(self, ctx)

    monkeypatch.setattr(fakes.FakeCustomers, "fetch_page", slow)
    groups: list[int] = []
    real_store = engine.QueueRunner._store_pages

    def spy(self, group, **kwargs):
        groups.append(sum(len(keyed) for _, keyed in group))
        return real_store(self, group, **kwargs)

    monkeypatch.setattr(engine.QueueRunner, "_store_pages", spy)
    fake_kind.__init__(50)  # 5 pages of 10
    queue = full_sync(fake_conn)
    assert queue.state == QueueState.DONE and queue.done_count == 50
    assert sum(groups) == 50
    if one_group:
        assert groups == [50], groups
    else:
        assert groups[0] == 10 and len(groups) > 1, groups


@pytest.mark.postgres
def test_a_value_the_encoder_cannot_encode_fails_its_own_line_as_before(fake_conn, fake_kind, monkeypatch):
    """A lone surrogate cannot be encoded to UTF-8: encoding ahead gives up on the row (it does not stop the
    fetch thread), and the group's usual path meets the value and fails that record's line alone."""

    def mapper(self, record):
        values = _rich(record)
        if record["id"] == 2:
            values["first_name"] = "bad \ud800 surrogate"
        return values

    monkeypatch.setattr(fakes.FakeCustomers, "map", mapper)
    fake_kind.__init__(5)
    queue = full_sync(fake_conn)
    states = dict(SyncQueueLine.objects.filter(queue=queue).values_list("external_id", "state"))
    assert states == {"1": "done", "2": "failed", "3": "done", "4": "done", "5": "done"}, states
    assert queue.state == QueueState.PARTIAL
    assert sorted(Customer.objects.filter(connection=fake_conn).values_list("external_id", flat=True)) == [
        "1",
        "3",
        "4",
        "5",
    ]


def test_a_later_pages_snapshot_of_an_id_replaces_an_earlier_ones_outcome_in_a_first_sync(
    fake_conn, fake_kind, settings, monkeypatch
):
    """The fetch thread plans each page (_PagePlan) and the main thread merges a group's pages: an id seen
    again on a later page of the group keeps only the later snapshot's outcome, as lines_add keeps the last."""
    settings.SYNC_FETCH_GROUP_WAIT_MS = 5000  # both pages in one group
    merged: list[int] = []
    real_merge = engine.QueueRunner._merge_pages
    monkeypatch.setattr(
        engine.QueueRunner, "_merge_pages", lambda self, pages: merged.append(len(pages)) or real_merge(self, pages)
    )
    refused: list[str] = []  # a group the database refused is stored again as drafts: right, but not this path
    real_drafts = engine.QueueRunner._store_as_drafts
    monkeypatch.setattr(
        engine.QueueRunner,
        "_store_as_drafts",
        lambda self, prepared, exc: refused.append(repr(exc)) or real_drafts(self, prepared, exc),
    )
    fake_kind.__init__(12)  # pages of 10: ids 1-10, then 11, 12 and the two below
    fake_kind.records[4] = {**fake_kind.make(5), "email": ""}  # id 5 refused on page 1...
    fake_kind.records.append(fake_kind.make(5, first_name="Fixed", version=50))  # ...and fine on page 2
    fake_kind.records.append({**fake_kind.make(3, version=51), "email": ""})  # id 3 fine on page 1, refused on 2
    queue = services.sync_start(connection=fake_conn, resource="customers", enqueue=False, full_scan=True).queue
    runner = engine.QueueRunner(queue)
    runner.run()
    queue.refresh_from_db()
    lines = dict(SyncQueueLine.objects.filter(queue=queue).values_list("external_id", "state"))
    assert lines["5"] == LineState.DONE and lines["3"] == LineState.FAILED, lines
    assert Customer.objects.get(connection=fake_conn, external_id="5").first_name == "Fixed"
    assert not Customer.objects.filter(connection=fake_conn, external_id="3").exists()
    assert Customer.objects.filter(connection=fake_conn).count() == 11
    assert runner._early == {}
    assert merged == [2], merged
    assert refused == [], refused
    assert_counters_match(queue)


def test_an_id_twice_on_one_page_keeps_only_the_later_snapshots_outcome_in_a_first_sync(
    fake_conn, fake_kind, monkeypatch
):
    """The same within a page (_map_early): a snapshot refused and then a good one, or the other way round,
    planned right the first time (a stale outcome would be caught by the lines' unique index and the group
    stored again another way: right in the end, but not this path)."""
    detours: list[str] = []
    for name in ("_store_retry", "_store_as_drafts"):
        real = getattr(engine.QueueRunner, name)
        monkeypatch.setattr(
            engine.QueueRunner,
            name,
            lambda self, prepared, exc, real=real, name=name: detours.append(name) or real(self, prepared, exc),
        )
    fake_kind.__init__(8)  # one page of 10: ids 1-8 and the two below
    fake_kind.records[4] = {**fake_kind.make(5), "email": ""}  # id 5 refused...
    fake_kind.records.append(fake_kind.make(5, first_name="Fixed", version=50))  # ...then fine, same page
    fake_kind.records.append({**fake_kind.make(3, version=51), "email": ""})  # id 3 fine, then refused
    queue = services.sync_start(connection=fake_conn, resource="customers", enqueue=False, full_scan=True).queue
    runner = engine.QueueRunner(queue)
    runner.run()
    queue.refresh_from_db()
    lines = dict(SyncQueueLine.objects.filter(queue=queue).values_list("external_id", "state"))
    assert lines["5"] == LineState.DONE and lines["3"] == LineState.FAILED, lines
    assert Customer.objects.get(connection=fake_conn, external_id="5").first_name == "Fixed"
    assert not Customer.objects.filter(connection=fake_conn, external_id="3").exists()
    assert Customer.objects.filter(connection=fake_conn).count() == 7
    assert runner._early == {}
    assert detours == [], detours
    assert_counters_match(queue)
