"""One statement per group where there were one per row (issue 20, fourth pass): the fetcher's done lines go
as one JSON array of ids, the unchanged-snapshot lookup as one JSON object {id: hash}, and SQLite's upserts
as multi-row VALUES in power-of-two chunks. Ids that need quoting or escaping in SQL, JSON or COPY must come
back exactly, on both databases."""

from __future__ import annotations

import threading

import pytest
from django.db import connection as db_connection

from customers.models import Customer
from sync import bulk, engine, services
from sync.engine import run_queue
from sync.models import LineState, QueueState, SyncQueueLine
from sync.sinks import ROW_GUARD
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
