"""Issue 16, the engine's part: snapshots only move forward (invariant 14), an unchanged snapshot writes
nothing, deletions converge but never by accident (invariant 15, the mass-deletion guard), a cursor belongs
to one upstream (invariant 18), and a bad record fails only its own line. On SQLite and PostgreSQL."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection as db_connection

from core import clock
from core.paging import Page
from customers.models import Customer
from sync import engine, services
from sync.models import LineState, QueueState, SyncActivity, SyncQueueLine, SyncStatus
from tests import fakes


def run(conn, **kw):
    queue = services.sync_start(connection=conn, resource="customers", **kw).queue
    queue.refresh_from_db()
    return queue


def row(conn, ext) -> Customer:
    return Customer.objects.get(connection=conn, external_id=str(ext))


def live(conn) -> int:
    return Customer.objects.filter(connection=conn, deleted_at__isnull=True).count()


@pytest.fixture
def marks_missing(monkeypatch):
    """The fake resource marks missing rows deleted after a full scan, as every real table resource does."""
    monkeypatch.setattr(fakes.FakeCustomers, "mark_missing_deleted", True)


# --- versioned upserts -------------------------------------------------------------------------------------
def test_an_older_snapshot_never_replaces_a_newer_one_on_the_claimed_path(claimed_conn, fake_kind):
    fake_kind.records = [fake_kind.make(1, first_name="New", version=5)]
    assert run(claimed_conn, full_scan=True).state == QueueState.DONE
    fake_kind.records = [fake_kind.make(1, first_name="Old", version=3)]  # an upstream replica lagging behind
    q = run(claimed_conn, full_scan=True)
    assert q.state == QueueState.DONE  # not an error: the older snapshot is simply not applied
    stored = row(claimed_conn, 1)
    assert (stored.first_name, stored.sync_version) == ("New", f"{5:030d}")


def test_a_replayed_older_webhook_body_does_not_overwrite_newer_data(fake_conn, fake_kind):
    fake_kind.records = [fake_kind.make(1, first_name="New", version=9)]
    run(fake_conn, full_scan=True)
    hook = services.sync_enqueue_records(
        connection=fake_conn,
        resource="customers",
        records=[fake_kind.make(1, first_name="Old", version=2)],
        enqueue=False,
    )
    assert engine.run_queue(hook.pk) == QueueState.DONE
    assert row(fake_conn, 1).first_name == "New"
    # A newer one does land, and an equal version with other content too (the same instant, edited twice).
    for first_name, version in (("Newer", 10), ("Same instant", 10)):
        hook = services.sync_enqueue_records(
            connection=fake_conn,
            resource="customers",
            records=[fake_kind.make(1, first_name=first_name, version=version)],
            enqueue=False,
        )
        engine.run_queue(hook.pk)
        assert row(fake_conn, 1).first_name == first_name


def test_versions_compare_as_numbers_not_as_text(fake_conn, fake_kind):
    fake_kind.records = [fake_kind.make(1, first_name="ten", version=10)]
    run(fake_conn, full_scan=True)
    fake_kind.records = [fake_kind.make(1, first_name="nine", version=9)]  # "9" > "10" as text
    run(fake_conn, full_scan=True)
    assert row(fake_conn, 1).first_name == "ten"


def test_a_record_without_a_version_still_lands_and_a_malformed_one_fails_its_line(fake_conn, fake_kind):
    fake_kind.records = [fake_kind.make(1, version=1)]
    run(fake_conn, full_scan=True)
    runner = engine.QueueRunner(run(fake_conn, enqueue=False))
    assert runner._take_fetch_lease()
    no_version = {k: v for k, v in fake_kind.make(1, first_name="unversioned").items() if k != "version"}
    runner._store_pages([Page([no_version, fake_kind.make(2, version=-5)], next_token=None)])
    assert row(fake_conn, 1).first_name == "unversioned"  # cannot be ordered: does not block
    bad = SyncQueueLine.objects.get(queue=runner.queue, external_id="2")
    assert bad.state == LineState.FAILED and "version is out of range" in bad.last_error


# --- unchanged data costs no writes ------------------------------------------------------------------------
def test_a_second_full_sync_of_unchanged_data_writes_no_row(fake_conn, fake_kind, fake_clock, marks_missing):
    fake_kind.__init__(40)
    first = run(fake_conn, full_scan=True)
    assert first.state == QueueState.DONE and live(fake_conn) == 40
    stamps = dict(Customer.objects.filter(connection=fake_conn).values_list("external_id", "synced_at"))
    xmins = _xmins(fake_conn)
    fake_clock.advance(3600)
    second = run(fake_conn, full_scan=True)
    assert second.state == QueueState.DONE and second.done_count == 40
    after = dict(Customer.objects.filter(connection=fake_conn).values_list("external_id", "synced_at"))
    assert after == stamps  # no row was written: synced_at is the first run's everywhere
    assert _xmins(fake_conn) == xmins  # PostgreSQL: no new row version at all
    # ...and mark-missing (decided by the run's lines, not by synced_at) deleted nothing.
    assert live(fake_conn) == 40
    assert not SyncActivity.objects.filter(queue=second, event="records.marked_deleted").exists()
    # One upstream change: exactly that row is written.
    fake_kind.records[4] = fake_kind.make(5, first_name="Changed", version=500)
    fake_clock.advance(3600)
    run(fake_conn, full_scan=True)
    changed = {
        ext
        for ext, at in Customer.objects.filter(connection=fake_conn).values_list("external_id", "synced_at")
        if at != stamps[ext]
    }
    assert changed == {"5"}


def test_unchanged_records_are_neither_mapped_nor_written_and_a_new_mapper_rewrites_once(
    fake_conn, fake_kind, fake_clock, monkeypatch
):
    """The fetcher compares each record's source hash (the record as sent, keyed by the mapper's revision)
    with the row's: an unchanged record is not even mapped (its line is still written, done), so a second
    full scan of unchanged data costs no mapping and no domain write. New mapping code (another revision)
    rewrites every row once, then they are unchanged again."""
    fake_kind.__init__(30)
    run(fake_conn, full_scan=True)
    stamps = dict(Customer.objects.filter(connection=fake_conn).values_list("external_id", "synced_at"))
    mapped = []
    real_map = fakes.FakeCustomers.map
    monkeypatch.setattr(
        fakes.FakeCustomers, "map", lambda self, record: mapped.append(record["id"]) or real_map(self, record)
    )
    fake_clock.advance(60)
    fake_kind.records[6] = fake_kind.make(7, first_name="Changed", version=700)
    second = run(fake_conn, full_scan=True)
    assert second.state == QueueState.DONE and second.done_count == 30
    assert mapped == [7], "only the changed record was mapped"
    assert SyncQueueLine.objects.filter(queue=second, state=LineState.DONE).count() == 30
    after = dict(Customer.objects.filter(connection=fake_conn).values_list("external_id", "synced_at"))
    assert {ext for ext, at in after.items() if at != stamps[ext]} == {"7"}

    # A deploy that changes the mapping code: every row is mapped and written once more, then not again.
    mapped.clear()
    monkeypatch.setattr(fakes.FakeCustomers, "mapping_revision", "2", raising=False)
    monkeypatch.setattr(engine, "_REVISIONS", {})
    fake_clock.advance(60)
    run(fake_conn, full_scan=True)
    assert len(mapped) == 30
    assert Customer.objects.filter(connection=fake_conn, synced_at=clock.now()).count() == 30
    mapped.clear()
    fake_clock.advance(60)
    run(fake_conn, full_scan=True)
    assert mapped == []


def test_rows_written_by_the_claimed_path_are_unchanged_for_the_fetch_path(fake_conn, fake_kind, fake_clock):
    """A row written from a line's payload (read back from jsonb, keys in jsonb's order) hashes like the same
    record fetched: a later fetch of unchanged data writes nothing."""
    fake_kind.__init__(12)
    fake_conn.config = {"process_on_fetch": False}  # every record through draft lines and claimed batches
    fake_conn.save(update_fields=["config"])
    run(fake_conn, full_scan=True)
    stamps = dict(Customer.objects.filter(connection=fake_conn).values_list("external_id", "synced_at"))
    assert len(stamps) == 12
    fake_conn.config = {}
    fake_conn.save(update_fields=["config"])
    fake_clock.advance(60)
    second = run(fake_conn, full_scan=True)
    assert second.state == QueueState.DONE and second.done_count == 12
    assert dict(Customer.objects.filter(connection=fake_conn).values_list("external_id", "synced_at")) == stamps


@pytest.mark.postgres
def test_the_unchanged_lookup_probes_the_unique_index_per_id(fake_conn, fake_kind):
    """The fetcher's per-group look-up of stored hashes must cost one index probe per id, whatever the
    planner believes about the table: with ``external_id = ANY(ids)`` a table loaded since its last ANALYZE
    (autovacuum off, or not yet run) was planned as a scan of every row of the connection per group, and a
    300,000-record rescan took 176 s instead of 29 s."""
    fake_kind.__init__(30)
    run(fake_conn, full_scan=True)
    runner = engine.QueueRunner(run(fake_conn, enqueue=False, full_scan=True))
    from django.test.utils import CaptureQueriesContext

    stored = dict(Customer.objects.filter(connection=fake_conn).values_list("external_id", "sync_hash"))
    with CaptureQueriesContext(db_connection) as ctx:
        found = runner._unchanged({"1": "x", "2": "y", "3": stored["3"], "31": stored["3"]})
    assert found == {"3"}  # an equal hash on a live row; a different hash, or no row, is not unchanged
    (query,) = [q["sql"] for q in ctx.captured_queries if "json_each_text" in q["sql"]]
    with db_connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + query)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Nested Loop" in plan and "Index Scan using uniq_customer_binding" in plan, plan
    assert "Bitmap Heap Scan" not in plan and "Seq Scan on customers_customer" not in plan, plan

    # In a run the look-up is a subquery of the group's locking statement (one round trip): the same plan.
    with CaptureQueriesContext(db_connection) as ctx:
        assert engine.run_queue(runner.queue.pk) == "done"
    (query,) = [q["sql"] for q in ctx.captured_queries if "json_each_text" in q["sql"]]
    assert query.startswith("SELECT id, ") and query.endswith("FOR UPDATE"), query
    with db_connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + query)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Nested Loop" in plan and "Index Scan using uniq_customer_binding" in plan, plan
    assert "Bitmap Heap Scan" not in plan and "Seq Scan on customers_customer" not in plan, plan


def test_the_unchanged_lookup_on_sqlite_probes_the_unique_index_per_id(fake_conn, fake_kind):
    """SQLite's planner put the table first for a plain JOIN with json_each: every row of the connection,
    and json_each scanned again for each one. The lookup must drive index probes from the ids."""
    if db_connection.vendor != "sqlite":
        pytest.skip("SQLite's plan; the PostgreSQL one is checked above")
    fake_kind.__init__(30)
    run(fake_conn, full_scan=True)
    runner = engine.QueueRunner(run(fake_conn, enqueue=False, full_scan=True))
    stored = dict(Customer.objects.filter(connection=fake_conn).values_list("external_id", "sync_hash"))
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(db_connection) as ctx:
        assert runner._unchanged({"1": "x", "3": stored["3"], "31": stored["3"]}) == {"3"}
    (query,) = [q["sql"] for q in ctx.captured_queries if "json_each" in q["sql"]]
    with db_connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + query)
        plan = [row[-1] for row in cursor.fetchall()]
    # "SCAN k" ("SCAN TABLE k" before SQLite 3.36): json_each's rows outside, the customers index inside
    assert plan[0].startswith(("SCAN k", "SCAN TABLE k")), plan
    assert "USING INDEX" in plan[1] and "external_id=?" in plan[1], plan


def _xmins(conn) -> dict:
    if db_connection.vendor != "postgresql":
        return {}
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT external_id, xmin::text FROM customers_customer WHERE connection_id = %s", [conn.pk])
        return dict(cursor.fetchall())


def test_the_write_path_counts_only_rows_it_wrote(fake_conn, fake_kind):
    fake_kind.__init__(10)
    run(fake_conn, full_scan=True)
    runner = engine.QueueRunner(run(fake_conn, enqueue=False, full_scan=True))
    assert runner._take_fetch_lease()
    records = [fake_kind.make(i) for i in range(1, 11)]
    records[0] = fake_kind.make(1, first_name="Edited", version=100)
    runner._store_pages([Page(records, next_token=None)])
    assert runner.rows_written == 1  # the statement's own count: 9 equal snapshots skipped


# --- deletions and the mass-deletion guard -----------------------------------------------------------------
def test_a_full_scan_marks_a_few_missing_rows_deleted(fake_conn, fake_kind, marks_missing):
    fake_kind.__init__(100)
    run(fake_conn, full_scan=True)
    fake_kind.records = fake_kind.records[5:]
    q = run(fake_conn, full_scan=True)
    assert q.state == QueueState.DONE and not q.action_required and q.pending_deletions == 0
    assert live(fake_conn) == 95


def test_a_full_scan_that_met_an_unidentifiable_record_deletes_nothing_by_itself(fake_conn, fake_kind, marks_missing):
    """Record 5 comes back without its id: its row is among the "not seen" ones, and the scan cannot tell it
    apart from a real deletion, so the guard holds the deletions (one row, far below its thresholds)."""
    fake_kind.__init__(20)
    run(fake_conn, full_scan=True)
    del fake_kind.records[4]["id"]
    q = run(fake_conn, full_scan=True)
    assert live(fake_conn) == 20 and row(fake_conn, 5).deleted_at is None
    assert q.pending_deletions == 1 and q.action_required and q.failed_count == 1
    held = SyncActivity.objects.get(queue=q, event="records.deletions_held")
    assert held.data["unidentified"] == 1 and "could not be identified" in held.message


def test_an_upstream_answering_an_empty_list_never_wipes_the_table(fake_conn, fake_kind, marks_missing):
    fake_kind.__init__(30)  # below the row threshold: only the "every live row" rule can hold this one
    run(fake_conn, full_scan=True)
    fake_kind.records = []  # the glitch
    q = run(fake_conn, full_scan=True)
    assert live(fake_conn) == 30
    assert q.state == QueueState.DONE and q.action_required and q.pending_deletions == 30
    held = SyncActivity.objects.get(queue=q, event="records.deletions_held")
    assert held.data["count"] == 30 and held.data["live"] == 30
    assert "held by the mass-deletion guard" in q.last_error


def test_a_scan_over_the_threshold_stops_before_deleting_and_apply_deletions_applies_it(
    fake_conn, fake_kind, marks_missing, staff
):
    fake_kind.__init__(200)
    run(fake_conn, full_scan=True)
    fake_kind.records = fake_kind.records[:140]  # 60 gone: more than 50 rows and more than 10 %
    q = run(fake_conn, full_scan=True)
    assert live(fake_conn) == 200 and q.pending_deletions == 60 and q.action_required
    assert SyncStatus.objects.get(connection=fake_conn, resource="customers").state == "success"
    q = services.queue_apply_deletions(queue=q, actor=staff)
    assert live(fake_conn) == 140 and q.pending_deletions == 0 and not q.action_required
    gone = set(
        Customer.objects.filter(connection=fake_conn, deleted_at__isnull=False).values_list("external_id", flat=True)
    )
    assert gone == {str(i) for i in range(141, 201)}
    assert SyncActivity.objects.get(queue=q, event="records.deletions_applied").data["count"] == 60
    with pytest.raises(services.InvalidQueueAction, match="holds no deletions"):
        services.queue_apply_deletions(queue=q)


def test_thresholds_are_settings(fake_conn, fake_kind, marks_missing, settings):
    settings.SYNC_MASS_DELETE_MIN_ROWS = 2
    settings.SYNC_MASS_DELETE_FRACTION = 0.01
    fake_kind.__init__(100)
    run(fake_conn, full_scan=True)
    fake_kind.records = fake_kind.records[3:]
    assert run(fake_conn, full_scan=True).pending_deletions == 3 and live(fake_conn) == 100


def test_held_deletions_of_an_older_scan_cannot_be_applied_after_a_newer_run(fake_conn, fake_kind, marks_missing):
    fake_kind.__init__(40)
    run(fake_conn, full_scan=True)
    fake_kind.records = []
    held = run(fake_conn, full_scan=True)
    fake_kind.__init__(40)  # the upstream is back
    run(fake_conn, full_scan=True)
    with pytest.raises(services.InvalidQueueAction, match="newer"):
        services.queue_apply_deletions(queue=held)
    assert live(fake_conn) == 40


def _held_queue(conn, upstream):
    upstream.__init__(60)
    run(conn, full_scan=True)
    upstream.records = []
    q = run(conn, full_scan=True)
    assert q.pending_deletions == 60
    return q


def test_apply_deletions_from_the_cli(fake_conn, fake_kind, marks_missing):
    q = _held_queue(fake_conn, fake_kind)
    out = io.StringIO()
    call_command("sync_apply_deletions", str(q.pk), stdout=out)
    assert live(fake_conn) == 0 and f"#{q.pk}" in out.getvalue()


def test_apply_deletions_from_the_api(fake_conn, fake_kind, marks_missing, staff):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    q = _held_queue(fake_conn, fake_kind)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=staff)[0].key}")
    response = api.post(f"/api/queues/{q.pk}/apply-deletions")
    assert response.status_code == 200, response.content
    assert response.json()["pending_deletions"] == 0 and live(fake_conn) == 0
    again = api.post(f"/api/queues/{q.pk}/apply-deletions")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_queue_action"


def test_apply_deletions_from_the_admin(fake_conn, fake_kind, marks_missing, client, staff):
    admin_client = client
    admin_client.force_login(staff)
    q = _held_queue(fake_conn, fake_kind)
    page = admin_client.get(f"/admin/sync/syncqueue/{q.pk}/change/")
    assert b"apply-deletions" in page.content and b"60 deletion(s) held" in page.content
    confirm = admin_client.get(f"/admin/sync/syncqueue/{q.pk}/action/apply_deletions/")
    assert confirm.status_code == 200 and live(fake_conn) == 60  # GET only asks
    done = admin_client.post(f"/admin/sync/syncqueue/{q.pk}/action/apply_deletions/")
    assert done.status_code == 302 and live(fake_conn) == 0


# --- a cursor belongs to one upstream ----------------------------------------------------------------------
def test_a_cursor_is_not_reused_against_another_upstream(fake_conn, fake_kind):
    fake_kind.__init__(12)
    run(fake_conn)
    status = SyncStatus.objects.get(connection=fake_conn, resource="customers")
    assert status.cursor == "12" and status.upstream
    fake_conn.base_url = "http://127.0.0.1:10/another-store"  # changed behind the admin's back (a shell)
    fake_conn.save()
    q = run(fake_conn, enqueue=False)
    assert q.cursor_from == ""  # reads the new upstream from the beginning
    assert SyncActivity.objects.filter(connection=fake_conn, event="connection.cursors_reset").exists()
    status.refresh_from_db()
    assert status.cursor == "" and status.upstream == services.upstream_fingerprint(fake_conn)


def test_a_run_on_the_old_upstream_settling_late_does_not_bind_its_cursor_to_the_new_one(fake_conn, fake_kind):
    fake_kind.__init__(5)
    q = run(fake_conn, enqueue=False)
    fake_conn.base_url = "http://127.0.0.1:10/elsewhere"
    fake_conn.save()
    services.connection_reset_cursors(connection=fake_conn, reason="test")
    engine.run_queue(q.pk)  # the run started against the old upstream finishes now
    assert SyncStatus.objects.get(connection=fake_conn, resource="customers").cursor == ""


def test_identity_covers_kind_url_account_and_declared_credentials(make_connection, org):
    conn = make_connection(org, base_url="https://Shop.example.com/", credentials={"consumer_key": "ck_1"})
    before = services.upstream_identity(conn)
    conn.base_url = "https://shop.example.com"
    assert services.identity_changes(before, conn) == []  # the same store written differently
    conn.update_credentials(consumer_secret="cs_new")
    assert services.identity_changes(before, conn) == []  # a rotated secret: the same account
    conn.update_credentials(consumer_key="ck_other_store")
    assert services.identity_changes(before, conn) == ["credential consumer_key"]
    conn.external_account_id = "42"
    assert "store / account id" in services.identity_changes(before, conn)
    assert "ck_1" not in str(before)  # credential values only as hashes


# --- a bad record fails its own line ----------------------------------------------------------------------
def test_a_bad_record_fails_its_own_line_and_the_rest_of_the_page_lands(fake_conn, fake_kind):
    fake_kind.__init__(5)
    fake_kind.records.append({"email": "no-id@example.com", "version": 6})  # no id
    fake_kind.records.append(fake_kind.make(7, email=""))  # the mapper refuses it
    fake_kind.records.append(fake_kind.make(8, phone="x" * 70))  # ignored by the fake mapper: fine
    fake_kind.records.append(fake_kind.make(9, email="a" * 250 + "@example.com"))  # over the column's 254
    q = run(fake_conn, full_scan=True)
    assert q.state == QueueState.PARTIAL and q.action_required
    assert Customer.objects.filter(connection=fake_conn).count() == 6  # 1-5 and 8
    errors = {line.external_id: line.last_error for line in SyncQueueLine.objects.filter(queue=q, state="failed")}
    assert len(errors) == 3
    assert errors["9"].startswith("rejected by mapper: email is 262 characters long; at most 254 fit")
    assert "email is required" in errors["7"]
    assert any("has no id" in e for e in errors.values())


def test_long_names_are_kept_whole(fake_conn, fake_kind):
    fake_kind.records = [fake_kind.make(1, first_name="N" * 10_000)]
    run(fake_conn, full_scan=True)
    assert len(row(fake_conn, 1).first_name) == 10_000


def test_a_tombstone_older_than_the_stored_snapshot_does_not_delete_it(fake_conn, fake_kind):
    fake_kind.records = [fake_kind.make(1, version=20)]
    run(fake_conn, full_scan=True)
    for version, deleted in ((10, False), (30, True)):  # a stale tombstone, then a real one
        hook = services.sync_enqueue_records(
            connection=fake_conn,
            resource="customers",
            records=[fake_kind.make(1, version=version, deleted=True)],
            enqueue=False,
        )
        engine.run_queue(hook.pk)
        stored = row(fake_conn, 1)
        assert (stored.deleted_at is not None) is deleted
    assert stored.sync_version == f"{30:030d}"


@pytest.mark.parametrize(
    "model,column",
    [("sync.SyncQueueLine", "queue_id"), ("customers.Customer", "connection_id"), ("commerce.Order", "connection_id")],
)
def test_no_single_column_index_competes_with_the_binding_index(db, model, column):
    """The per-group look-ups ("these ids of this queue", "these ids of this connection") must be planned on
    the composite unique index, one probe per id. A single-column index on the leading column was chosen
    instead by a planner without fresh statistics, scanning every line of the queue (or row of the
    connection) for every group; it also cost an index insertion per row written."""
    from django.apps import apps

    table = apps.get_model(model)._meta.db_table
    with db_connection.cursor() as cursor:
        constraints = db_connection.introspection.get_constraints(cursor, table)
    single = [name for name, c in constraints.items() if c["index"] and c["columns"] == [column]]
    assert single == [], f"{table} has an index on {column} alone: {single}"
    assert any(c["unique"] and c["columns"][:1] == [column] and len(c["columns"]) == 2 for c in constraints.values())


@pytest.mark.parametrize(
    "text",
    [
        "2025-02-02T01:03:00",  # the fast path's form (WooCommerce *_gmt)
        "0999-01-01T00:00:00",
        "2024-02-29T23:59:59",
        "2025-02-02T01:03+00",  # 19 characters too, but with a zone: the general path
        "2025-02-02 01:03:00",
        "2025-02-02T01:03:00.5Z",
        "2025-02-02T03:03:00+02:00",
    ],
)
def test_a_timestamp_version_is_the_same_text_on_every_path(text):
    from connectors.base import normalise_version
    from core.timestamps import parse_upstream_datetime

    expected = parse_upstream_datetime(text).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    assert normalise_version("timestamp", text) == expected


@pytest.mark.parametrize(
    "text", ["2025-13-02T01:03:00", "2025-02-30T01:03:00", "2025-02-02T25:03:00", "2025-02-02T01:03:6\uff10"]
)
def test_an_impossible_timestamp_version_fails_its_record(text):
    from connectors.base import normalise_version
    from core.errors import MappingError

    with pytest.raises(MappingError, match="is not a timestamp"):
        normalise_version("timestamp", text)
