"""Adversarial review of the engine's processing-on-fetch path (page groups stored in one transaction,
rows upserted inline, bulk.upsert_rows' COPY path, relaxed commits, partial line indexes)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection as db_connection
from django.db import transaction
from django.forms.models import model_to_dict

from connectors.base import Page
from core import clock
from customers.models import Customer, LoyaltyTier
from sync import bulk, engine, services
from sync.models import LineAction, LineState, SyncQueueLine
from tests.sync.conftest import assert_counters_match


def start(conn, **kw):
    result = services.sync_start(connection=conn, resource="customers", **kw)
    result.queue.refresh_from_db()
    return result.queue


def runner_with_lease(queue) -> engine.QueueRunner:
    runner = engine.QueueRunner(queue)
    assert runner._take_fetch_lease()
    return runner


def lines_of(queue) -> dict[str, SyncQueueLine]:
    return {line.external_id: line for line in SyncQueueLine.objects.filter(queue=queue)}


# --- groups mixing new ids, repeats, deletes and mapper failures -------------------------------------------
def test_a_group_mixing_repeats_deletes_and_failures_writes_each_record_once(fake_conn, fake_kind, org):
    fake_kind.__init__(0)
    make = fake_kind.make
    Customer.objects.create(organization=org, connection=fake_conn, external_id="50", email="gone@example.com")
    q = start(fake_conn, enqueue=False)
    runner = runner_with_lease(q)
    # One group of two pages: id 2 twice (the later snapshot must win), a delete of a row we have, a
    # record the mapper rejects for good, one whose mapper fails once.
    fake_kind.flaky["4"] = 1
    group1 = [
        Page([make(1), make(2), make(3, email="")], next_token=1),
        Page([make(2, first_name="Second"), {"id": 50, "version": 5, "deleted": True}, make(4)], next_token=2),
    ]
    assert runner._store_pages(group1) == 1  # only the flaky one waits in draft
    lines = lines_of(q)
    assert {k: (v.state, v.action) for k, v in lines.items()} == {
        "1": (LineState.DONE, LineAction.UPSERT),
        "2": (LineState.DONE, LineAction.UPSERT),
        "3": (LineState.FAILED, LineAction.UPSERT),
        "4": (LineState.DRAFT, LineAction.UPSERT),
        "50": (LineState.DONE, LineAction.DELETE),
    }
    assert Customer.objects.get(connection=fake_conn, external_id="2").first_name == "Second"
    assert Customer.objects.get(connection=fake_conn, external_id="50").deleted_at is not None
    assert_counters_match(q)

    # The next group re-reads id 1 unchanged (offset paging overlap), brings id 3 fixed and id 2 again
    # twice in one page with its first snapshot last (the last one read wins, as in lines_add).
    group2 = [Page([make(1), make(3), make(2, first_name="Second"), make(2), make(5)], next_token=None)]
    before = Customer.objects.get(connection=fake_conn, external_id="1").synced_at
    runner._store_pages(group2)
    lines = lines_of(q)
    # Changed on purpose (issue 20): a line done on the fetch path keeps no payload, so a re-read of its id
    # goes back to draft with the record; processing it again writes nothing when it is unchanged (below).
    assert lines["1"].state == LineState.DRAFT and lines["1"].payload == make(1)
    assert Customer.objects.get(connection=fake_conn, external_id="1").synced_at == before
    assert lines["3"].state == LineState.DRAFT and lines["3"].payload["email"], "a newer snapshot goes back to draft"
    assert lines["2"].state == LineState.DRAFT and lines["2"].payload == make(2)
    assert lines["5"].state == LineState.DONE
    assert_counters_match(q)

    fake_kind.flaky.clear()
    SyncQueueLine.objects.filter(queue=q, state=LineState.DRAFT).update(next_attempt_at=None)
    runner.process_available()
    assert_counters_match(q)
    assert set(lines_of(q)) == {"1", "2", "3", "4", "5", "50"}
    assert all(line.state == LineState.DONE for line in lines_of(q).values())
    rows = Customer.objects.filter(connection=fake_conn)
    assert sorted(rows.values_list("external_id", flat=True)) == ["1", "2", "3", "4", "5", "50"]
    assert rows.get(external_id="2").first_name == "First2"
    assert rows.get(external_id="3").email == "user3@example.com"
    assert rows.get(external_id="1").synced_at == before, "an unchanged re-read, processed again, writes nothing"


def test_a_first_sync_inserts_without_upsert_until_a_row_is_already_there(fake_conn, fake_kind, org, monkeypatch):
    """A connection without rows gets its groups inserted without an upsert (insert_only: a COPY straight
    into the table on PostgreSQL, a plain INSERT on SQLite). A row that appears meanwhile (a webhook's) makes
    the group's insert fail; the group is written again by the guarded upsert, which stays on: nothing lost,
    nothing doubled, the newer row kept."""
    fake_kind.__init__(0)
    make = fake_kind.make
    q = start(fake_conn, enqueue=False)
    runner = runner_with_lease(q)
    runner._known_rows = False  # as fetch() finds it for a connection without rows
    inserts = []
    real_insert = bulk.insert_new
    monkeypatch.setattr(bulk, "insert_new", lambda model, rows: inserts.append(len(rows)) or real_insert(model, rows))
    runner._store_pages([Page([make(1), make(2)], next_token=1)])
    assert inserts == [2], "a plain insert, on either database"
    # A webhook writes id 4 with a newer snapshot before the next group arrives.
    Customer.objects.create(
        organization=org, connection=fake_conn, external_id="4", email="new@example.com", sync_version="9" * 30
    )
    assert runner._store_pages([Page([make(3), make(4)], next_token=None)]) == 0
    # The second group tried the plain insert too, was refused (id 4), and went through the upsert.
    assert runner._known_rows and inserts == [2, 2], "the upsert stays on after a refused insert"
    rows = Customer.objects.filter(connection=fake_conn)
    assert sorted(rows.values_list("external_id", flat=True)) == ["1", "2", "3", "4"]
    assert rows.get(external_id="4").email == "new@example.com", "the newer row is kept"
    assert {line.external_id: line.state for line in SyncQueueLine.objects.filter(queue=q)} == {
        "1": "done",
        "2": "done",
        "3": "done",
        "4": "done",
    }
    assert_counters_match(q)


def test_a_delete_and_an_upsert_of_the_same_id_in_one_group_keep_the_last(fake_conn, fake_kind):
    fake_kind.__init__(0)
    make = fake_kind.make
    q = start(fake_conn, enqueue=False)
    runner = runner_with_lease(q)
    runner._store_pages([Page([make(7), {"id": 7, "version": 8, "deleted": True}], next_token=1)])
    assert lines_of(q)["7"].action == LineAction.DELETE
    assert not Customer.objects.filter(connection=fake_conn, external_id="7", deleted_at__isnull=True).exists()
    runner._store_pages([Page([{"id": 8, "version": 9, "deleted": True}, make(8)], next_token=None)])
    assert lines_of(q)["8"].action == LineAction.UPSERT
    assert Customer.objects.get(connection=fake_conn, external_id="8").deleted_at is None
    assert_counters_match(q)


# --- a record only the database refuses ------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.postgres
def test_a_record_postgresql_refuses_fails_alone_and_the_rest_of_its_group_is_written(fake_conn, fake_kind):
    """A NUL character is valid JSON and a valid Python string, but neither PostgreSQL text nor jsonb can
    hold it: the group's write is refused, the group is stored as draft lines, where that record fails its
    own line at once (its payload kept with U+FFFD); the rest of the group is written by the claimed path,
    and the run is not stuck on it. (Changed on purpose, issue 20: the fetcher no longer JSON-encodes every
    record to look for a NUL before writing; PostgreSQL's refusal is the check.)"""
    fake_kind.__init__(0)
    make = fake_kind.make
    q = start(fake_conn, enqueue=False)
    runner = runner_with_lease(q)
    drafts = runner._store_pages([Page([make(1), make(2, first_name="bad\x00name"), make(3)], next_token=None)])
    assert drafts == 2
    runner.process_available()
    # lines_add names an unstorable record's line apart (unstorable:<random>:<id>), so a later good snapshot
    # of the same id still gets a line of its own.
    lines = {k.rsplit(":", 1)[-1]: v for k, v in lines_of(q).items()}
    assert {k: v.state for k, v in lines.items()} == {"1": "done", "2": "failed", "3": "done"}
    assert "NUL character" in lines["2"].last_error
    assert lines["2"].payload["first_name"] == "bad\ufffdname"
    assert sorted(Customer.objects.filter(connection=fake_conn).values_list("external_id", flat=True)) == ["1", "3"]
    assert_counters_match(q)
    q.refresh_from_db()
    assert q.action_required


@pytest.mark.postgres
def test_a_pushed_record_postgresql_refuses_fails_alone_on_the_webhook_lane(fake_conn, fake_kind):
    make = fake_kind.make
    q = services.sync_enqueue_records(
        connection=fake_conn,
        resource="customers",
        records=[make(7), make(8, last_name="x\x00y"), {"id": 9, "email": "nine@example.com", "k\x00": 1}],
        enqueue=False,
    )
    engine.run_queue(q.pk)
    lines = lines_of(q)
    failed = {k: v for k, v in lines.items() if v.state == "failed"}
    assert len(failed) == 2 and all("NUL character" in v.last_error for v in failed.values())
    assert {k for k, v in lines.items() if v.state == "done"} == {"7"}
    assert list(Customer.objects.filter(connection=fake_conn).values_list("external_id", flat=True)) == ["7"]
    assert_counters_match(q)


@pytest.mark.parametrize("batch_size", [None, 1])
def test_a_value_a_field_refuses_fails_its_line_not_the_run(fake_conn, fake_kind, monkeypatch, batch_size):
    """A mapper value the model field cannot convert (a decimal column given a word) is that record's
    problem: its line fails, the other records of the batch are written, and the run settles."""
    fake_kind.__init__(3)
    original = type(fake_kind_resource()).map

    def map_(self, record):
        values = original(self, record)
        if record["id"] == 2:
            values["loyalty_balance"] = "not-a-number"
        return values

    monkeypatch.setattr(type(fake_kind_resource()), "map", map_)
    q = start(fake_conn, enqueue=False)
    state = engine.run_queue(q.pk, batch_size=batch_size)
    lines = lines_of(q)
    assert "a field rejected" in lines["2"].last_error
    assert {k: v.state for k, v in lines.items()} == {"1": "done", "2": "failed", "3": "done"}, state
    assert sorted(Customer.objects.filter(connection=fake_conn).values_list("external_id", flat=True)) == ["1", "3"]
    assert_counters_match(q)


def fake_kind_resource():
    from tests import fakes

    return fakes.connector.resources["customers"]


# --- bulk.upsert_rows: the COPY path must store what Django's own insert stores ---------------------------
def _compare(model, conn, org, values: dict, exclude=("id", "external_id", "synced_at")):
    """Write ``values`` with upsert_rows (key "a") and with Django's save (key "b"); return both rows."""
    row = {"organization_id": org.pk, "connection_id": conn.pk, "external_id": "a", **values}
    with transaction.atomic():
        bulk.upsert_rows(model, [row], unique_fields=["connection", "external_id"], update_fields=sorted(values))
    model.objects.create(organization=org, connection=conn, external_id="b", **values)
    a = model_to_dict(model.objects.get(connection=conn, external_id="a"), exclude=exclude)
    b = model_to_dict(model.objects.get(connection=conn, external_id="b"), exclude=exclude)
    return a, b


CASES = [
    (
        Customer,
        {
            "email": "x@example.com",
            "billing": {"city": "Ñuñoa", "n": 1, "nested": [None, True, 1.5]},
            "shipping": {},
            "loyalty_balance": Decimal("12.345"),
            "is_paying_customer": True,
            "extra": {"big": 2**70, "s": 'quote " and \\ backslash\ttab'},
            "upstream_updated_at": dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC),
        },
    ),
    (Customer, {"email": "y@example.com", "loyalty_balance": None, "extra": [], "billing": "a string"}),
    (Customer, {"email": "z@example.com", "loyalty_balance": "7.5", "upstream_created_at": "2024-05-01T10:00:00Z"}),
    (LoyaltyTier, {"name": "Gold", "rank": 3, "min_points": Decimal("1000"), "benefits": ["a", {"b": None}]}),
]


@pytest.mark.parametrize(
    ("model", "values"), CASES, ids=["customer-full", "customer-nulls", "customer-strings", "tier"]
)
def test_upsert_rows_stores_what_a_django_save_stores(fake_conn, org, model, values):
    a, b = _compare(model, fake_conn, org, values)
    assert a == b


@pytest.mark.parametrize("name", ["product", "order"])
def test_upsert_rows_stores_commerce_rows_like_django(fake_conn, org, name):
    from commerce.models import Order, Product

    model, values = {
        "product": (Product, {"name": "P", "price": Decimal("9.9900"), "stock_quantity": 3, "active": False}),
        "order": (Order, {"number": "1001", "total": Decimal("10.5"), "line_items": [{"sku": "A", "qty": 2}]}),
    }[name]
    a, b = _compare(model, fake_conn, org, values)
    assert a == b


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_upsert_rows_outside_a_transaction_still_writes(fake_conn, org):
    """The staging table is ON COMMIT DELETE ROWS: in autocommit, the COPY's own commit would empty it
    before the INSERT..SELECT reads it, and the rows would be dropped without an error."""
    assert not db_connection.in_atomic_block
    row = {"organization_id": org.pk, "connection_id": fake_conn.pk, "external_id": "auto", "email": "a@example.com"}
    bulk.upsert_rows(Customer, [row], unique_fields=["connection", "external_id"], update_fields=["email"])
    assert Customer.objects.filter(connection=fake_conn, external_id="auto").exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_relaxed_commit_stays_inside_the_engines_own_transactions(fake_conn, fake_kind):
    fake_kind.__init__(0)
    q = start(fake_conn, enqueue=False)

    def setting():
        with db_connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            return cursor.fetchone()[0]

    with transaction.atomic():
        services.lock_queue(q.pk, relaxed_commit=True)
        assert setting() == "off", "the engine's own transaction commits relaxed"
    assert setting() == "on", "and only that transaction"
    with transaction.atomic():  # a caller's transaction: its commit must stay durable
        with transaction.atomic():
            services.lock_queue(q.pk, relaxed_commit=True)
            bulk.relaxed_commit()
        assert setting() == "on"


# --- partial indexes -----------------------------------------------------------------------------------
def _claim_qs(queue_id):
    from django.db.models import Q

    from core import clock

    now = clock.now()
    return (
        SyncQueueLine.objects.filter(queue_id=queue_id, state=LineState.DRAFT, queue__cancelled_at__isnull=True)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("id")
        .values_list("id", flat=True)[:100]
    )


def _reaper_qs(queue_id):
    from core import clock

    return SyncQueueLine.objects.filter(state=LineState.PROCESSING, lease_until__lt=clock.now())


def _failed_qs(queue_id):
    return SyncQueueLine.objects.filter(queue_id=queue_id, state=LineState.FAILED)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("build", "index", "other"),
    [
        (_claim_qs, "sync_line_open_by_queue", None),
        (_reaper_qs, "sync_line_leased", "sync_line_open_by_queue"),
        (_failed_qs, "sync_line_open_by_queue", None),
    ],
    ids=["claim", "reaper", "failed-lines"],
)
def test_the_claim_and_reaper_queries_can_use_the_partial_indexes(fake_conn, fake_kind, build, index, other):
    """The planner proves each query's state condition implies the index's predicate (else it could never
    use a partial index). Tiny tables make every index cost the same, so a competing index is dropped
    (inside the test's transaction) and sequential scans are priced out."""
    fake_kind.__init__(0)
    q = start(fake_conn, enqueue=False)
    with db_connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        if other:
            cursor.execute(f"DROP INDEX {other}")
    plan = build(q.pk).explain()
    assert index in plan, plan


# --- the webhook lane and a run writing the same rows ----------------------------------------------------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_run_and_the_webhook_lane_crossing_upserts_and_deletes_do_not_deadlock(
    fake_conn, fake_kind, org, monkeypatch
):
    """The run's group upserts A and deletes B while a webhook batch upserts B and deletes A. Upserts are
    written in key order, but a delete after them took its rows' locks in the other order: PostgreSQL
    killed one of the two transactions as a deadlock (an OperationalError, which fails a fetching run)."""
    import threading

    fake_kind.__init__(0)
    for ext in ("A", "B"):
        Customer.objects.create(organization=org, connection=fake_conn, external_id=ext, email=f"{ext}@example.com")
    run_q = start(fake_conn, enqueue=False)
    hook_q = services.sync_enqueue_records(
        connection=fake_conn, resource="customers", records=[fake_kind.make(99)], enqueue=False
    )
    barrier = threading.Barrier(2, timeout=3)
    real_upsert = bulk.upsert_rows

    def upsert_then_wait(*args, **kwargs):
        real_upsert(*args, **kwargs)
        try:
            barrier.wait()  # both hold their upserted rows before either deletes
        except threading.BrokenBarrierError:
            pass  # the other writer waits on our locks: fine, go on

    monkeypatch.setattr(bulk, "upsert_rows", upsert_then_wait)
    errors: list[BaseException] = []

    def write(queue, upsert_ext, delete_ext):
        try:
            runner = engine.QueueRunner(queue)
            up = SyncQueueLine(external_id=upsert_ext, payload={})
            gone = SyncQueueLine(external_id=delete_ext, payload={}, action=LineAction.DELETE)
            with transaction.atomic():
                runner._write([(up, {"email": f"{upsert_ext}@new.example.com"})], [gone], clock.now())
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [
        threading.Thread(target=write, args=(run_q, "A", "B")),
        threading.Thread(target=write, args=(hook_q, "B", "A")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors


# --- force-done during a fetch; a full scan's deletions after a group fell back to drafts -----------------
def test_force_done_in_the_middle_of_a_fetch_stops_it_without_counter_drift(fake_conn, fake_kind):
    from sync.models import QueueState

    fake_kind.__init__(40)
    fake_kind.flaky["2"] = 100  # a draft line waiting for its retry when the queue is forced done
    fake_conn.config = {"fetch_group_records": 1}
    fake_conn.save(update_fields=["config"])
    q = start(fake_conn, enqueue=False)
    forced = []

    def progress(queue):
        if queue.pages_fetched >= 2 and not forced:
            forced.append(services.queue_force_done(queue=queue))

    state = engine.run_queue(q.pk, progress=progress, batch_size=5)
    q.refresh_from_db()
    assert forced and state == QueueState.DONE
    assert q.pages_fetched < 4, "the fetch stopped at the force"
    assert_counters_match(q)
    done_upserts = SyncQueueLine.objects.filter(queue=q, state=LineState.DONE, action=LineAction.UPSERT)
    assert Customer.objects.filter(connection=fake_conn).count() == done_upserts.count()
    assert lines_of(q)["2"].state == LineState.CANCELLED


def test_a_full_scan_with_a_group_stored_as_drafts_marks_only_missing_rows_deleted(fake_conn, fake_kind, monkeypatch):
    from django.db import IntegrityError

    from tests import fakes

    monkeypatch.setattr(fakes.connector.resources["customers"], "mark_missing_deleted", True)
    fake_kind.__init__(25)
    start(fake_conn, full_scan=True)
    del fake_kind.records[4]  # id 5 vanished upstream
    real = engine.QueueRunner._store_inline
    calls = []

    def first_group_rejected(self, *args):
        calls.append(1)
        if len(calls) == 1:
            raise IntegrityError("simulated")
        return real(self, *args)

    monkeypatch.setattr(engine.QueueRunner, "_store_inline", first_group_rejected)
    fake_conn.config = {"fetch_group_records": 1}
    fake_conn.save(update_fields=["config"])
    q = start(fake_conn, full_scan=True)
    assert q.state == "done" and len(calls) >= 2
    gone = Customer.objects.filter(connection=fake_conn, deleted_at__isnull=False)
    assert list(gone.values_list("external_id", flat=True)) == ["5"]
    assert_counters_match(q)


def test_a_page_fetched_before_a_webhook_delivery_does_not_overwrite_its_newer_snapshot(fake_conn, fake_kind):
    fake_kind.__init__(0)
    make = fake_kind.make
    q = start(fake_conn, enqueue=False)
    runner = runner_with_lease(q)
    older = make(1, first_name="Old", version=1)  # the run fetched this page first...
    hook = services.sync_enqueue_records(
        connection=fake_conn, resource="customers", records=[make(1, first_name="New", version=2)], enqueue=False
    )
    engine.run_queue(hook.pk)  # ...the webhook lane wrote the newer snapshot meanwhile...
    runner._store_pages([Page([older], next_token=None)])  # ...then the run stored its page
    assert Customer.objects.get(connection=fake_conn, external_id="1").first_name == "New"


def test_a_task_that_arrives_while_another_worker_settles_the_queue_leaves_its_status_alone(fake_conn, fake_kind):
    """run_queue checks is_active before building its runner; another worker may settle the queue in between
    (a re-delivered task, two clusters). The runner must then leave the settled status alone: before, it wrote
    "syncing" over "success" for good (seen in CI: tests/chaos/test_two_qclusters.py)."""
    from sync.models import QueueState, StatusState, SyncQueue, SyncStatus

    fake_kind.__init__(3)
    q = start(fake_conn, enqueue=False)
    assert engine.run_queue(q.pk) == QueueState.DONE
    status = SyncStatus.objects.get(connection=fake_conn, resource="customers")
    assert status.state == StatusState.SUCCESS
    # A second delivery that passed run_queue's is_active check before the settle committed:
    stale = SyncQueue.objects.select_related("connection").get(pk=q.pk)
    stale.is_active = True
    assert engine.QueueRunner(stale).run() == QueueState.DONE
    status.refresh_from_db()
    assert status.state == StatusState.SUCCESS and status.last_queue_id == q.pk
    assert SyncQueue.objects.get(pk=q.pk).process_runs == 1, "a settled queue is not worked again"
