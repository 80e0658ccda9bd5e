"""The engine end to end against the in-memory fake connector (tests/fakes.py)."""

from __future__ import annotations

import datetime as dt
import random
import threading

import pytest

from connectors.base import AuthError, BadPage, TransientError
from customers.models import Customer
from sync import engine, services
from sync.models import LineState, QueueState, StatusState, SyncActivity, SyncQueue, SyncQueueLine, SyncStatus
from tests.sync.conftest import assert_counters_match


def start(conn, **kw):
    result = services.sync_start(connection=conn, resource="customers", **kw)
    result.queue.refresh_from_db()
    return result.queue


def status(conn):
    return SyncStatus.objects.get(connection=conn, resource="customers")


def events(queue):
    return list(SyncActivity.objects.filter(queue=queue).order_by("id").values_list("event", flat=True))


@pytest.fixture
def fixed_jitter(monkeypatch, settings):
    """Backoff without jitter and with the real base (settings_test sets 0), so waits are exact."""
    settings.SYNC_RETRY_BASE_SECONDS = 1.0
    monkeypatch.setattr(random, "uniform", lambda a, b: 1.0)


# --- retries and backoff ----------------------------------------------------------------------------------
def test_a_flaky_line_is_retried_with_backoff_and_succeeds(fake_conn, fake_kind, fake_clock, fixed_jitter):
    fake_kind.__init__(5)
    fake_kind.flaky["3"] = 2  # fails twice, then maps
    q = start(fake_conn)
    assert q.state == QueueState.DONE, q.last_error
    line = SyncQueueLine.objects.get(queue=q, external_id="3")
    assert line.attempts == 3 and line.state == LineState.DONE
    assert fake_clock.sleeps == [1.0, 2.0]  # waited for the line's backoff, on the fake clock
    assert SyncQueueLine.objects.filter(queue=q, attempts=1).count() == 4
    assert Customer.objects.filter(connection=fake_conn).count() == 5
    assert_counters_match(q)


def test_backoff_timing_is_stored_on_the_line(fake_conn, fake_kind, fake_clock, fixed_jitter):
    fake_kind.__init__(2)
    fake_kind.flaky["1"] = 1
    q = start(fake_conn, enqueue=False)
    runner = engine.QueueRunner(q)
    runner.fetch()  # fetch also processes what it can: line 1 fails its first attempt
    line = SyncQueueLine.objects.get(queue=q, external_id="1")
    assert line.state == LineState.DRAFT and line.attempts == 1
    assert line.next_attempt_at == fake_clock.now() + dt.timedelta(seconds=1)
    assert "flaky mapper failure" in line.last_error
    assert runner.claim(10) == []  # not due yet
    fake_clock.advance(1)
    assert [ln.external_id for ln in runner.claim(10)] == ["1"]


def test_after_the_last_attempt_the_line_fails_and_the_queue_needs_action(
    fake_conn, fake_kind, fake_clock, fixed_jitter
):
    fake_kind.__init__(4)
    fake_kind.records[1]["boom"] = True  # id 2: its mapper always raises (not a MappingError)
    q = start(fake_conn)
    assert q.state == QueueState.PARTIAL and q.action_required
    line = SyncQueueLine.objects.get(queue=q, external_id="2")
    assert line.state == LineState.FAILED and line.attempts == 3 and "transient mapper failure" in line.last_error
    assert fake_clock.sleeps == [1.0, 2.0]
    failed_row = SyncActivity.objects.get(queue=q, event="line.failed")
    assert failed_row.line_id == line.pk and "transient mapper failure" in failed_row.message
    assert failed_row.data["attempts"] == 3
    assert "queue.action_required" in events(q)
    assert Customer.objects.filter(connection=fake_conn).count() == 3
    assert status(fake_conn).state == StatusState.FAILED and "2" in status(fake_conn).last_error
    assert_counters_match(q)


def test_a_mapper_rejected_record_fails_only_its_line(fake_conn, fake_kind):
    fake_kind.__init__(12)
    fake_kind.records[4]["email"] = ""  # MappingError: permanent, no retries
    q = start(fake_conn)
    assert q.state == QueueState.PARTIAL
    bad = SyncQueueLine.objects.get(queue=q, external_id="5")
    assert bad.state == LineState.FAILED and bad.attempts == 1 and "email is required" in bad.last_error
    assert q.done_count == 11 and q.failed_count == 1
    assert set(Customer.objects.filter(connection=fake_conn).values_list("external_id", flat=True)) == {
        str(i) for i in range(1, 13) if i != 5
    }
    assert_counters_match(q)


# --- retry / force-done / cancel ---------------------------------------------------------------------------
def test_retry_a_partial_queue_then_cursor_advances(fake_conn, fake_kind):
    fake_kind.__init__(6)
    fake_kind.flaky["4"] = 3  # exhausts the three attempts of the first run
    q = start(fake_conn)
    assert q.state == QueueState.PARTIAL and status(fake_conn).cursor == ""  # cursor stays on partial
    q = services.queue_retry(queue=q)
    q.refresh_from_db()
    assert q.state == QueueState.DONE and not q.action_required and not q.is_active
    assert SyncQueueLine.objects.get(queue=q, external_id="4").state == LineState.DONE
    assert status(fake_conn).cursor == "6" and status(fake_conn).state == StatusState.SUCCESS
    assert "queue.retry" in events(q)
    assert_counters_match(q)


def test_force_done_a_partial_queue(fake_conn, fake_kind, staff):
    fake_kind.__init__(3)
    fake_kind.records[0]["email"] = ""
    q = start(fake_conn)
    assert q.state == QueueState.PARTIAL
    q = services.queue_force_done(queue=q, actor=staff)
    assert q.state == QueueState.DONE and not q.action_required
    assert SyncQueueLine.objects.get(queue=q, external_id="1").state == LineState.CANCELLED
    assert status(fake_conn).cursor == "3"  # the user chose to skip the bad record
    row = SyncActivity.objects.get(queue=q, event="queue.force_done")
    assert row.actor == staff and row.actor_label == "alice"
    with pytest.raises(services.InvalidQueueAction):
        services.queue_force_done(queue=q)
    assert_counters_match(q)


def test_retry_and_force_done_on_a_failed_queue(fake_conn, fake_kind):
    fake_kind.__init__(15)
    fake_kind.fail_pages[0] = TransientError("HTTP 503 from GET /customers: down")
    q = start(fake_conn)
    assert q.state == QueueState.FAILED and q.total_count == 0 and "503" in q.last_error
    assert status(fake_conn).state == StatusState.FAILED
    fake_kind.fail_pages.clear()
    q = services.queue_retry(queue=q)  # no failed lines, but the fetch failed: fetching resumes
    q.refresh_from_db()
    assert q.state == QueueState.DONE and q.done_count == 15
    assert status(fake_conn).cursor == "15"

    fake_kind.records.append(fake_kind.make(16))
    fake_kind.fail_pages[0] = TransientError("HTTP 503 again")
    q2 = start(fake_conn)
    assert q2.state == QueueState.FAILED
    q2 = services.queue_force_done(queue=q2)
    assert q2.state == QueueState.DONE


def test_retry_refuses_what_it_cannot_retry(fake_conn, fake_kind):
    fake_kind.__init__(2)
    q = start(fake_conn)
    with pytest.raises(services.InvalidQueueAction):
        services.queue_retry(queue=q)
    draft = start(fake_conn, enqueue=False)
    with pytest.raises(services.InvalidQueueAction) as err:
        services.queue_retry(queue=draft)
    assert err.value.http_status == 409


def test_cancel_a_queue_before_it_runs(fake_conn, fake_kind):
    fake_kind.__init__(3)
    q = start(fake_conn, enqueue=False)
    q = services.queue_cancel(queue=q)
    assert q.state == QueueState.CANCELLED and not q.is_active
    assert engine.run_queue(q.pk) == QueueState.CANCELLED  # a late task does nothing
    assert not Customer.objects.exists()
    assert status_or_none(fake_conn) in (None, StatusState.IDLE)
    with pytest.raises(services.InvalidQueueAction):
        services.queue_cancel(queue=q)
    with pytest.raises(services.InvalidQueueAction):
        services.queue_retry(queue=q)


def status_or_none(conn):
    row = SyncStatus.objects.filter(connection=conn, resource="customers").first()
    return row.state if row else None


def test_cancel_in_the_middle_of_a_run(fake_conn, fake_kind):
    fake_kind.__init__(40)
    fake_conn.config = {"fetch_group_records": 1}  # page by page, so that the cancel lands mid-run
    fake_conn.save(update_fields=["config"])
    q = start(fake_conn, enqueue=False)

    def progress(queue):
        if queue.done_count >= 5 and queue.cancelled_at is None:
            services.queue_cancel(queue=queue)

    assert engine.run_queue(q.pk, progress=progress, batch_size=5) == QueueState.CANCELLED
    q.refresh_from_db()
    assert q.state == QueueState.CANCELLED and q.done_count < 40
    assert q.done_count + q.cancelled_count == q.total_count
    assert Customer.objects.filter(connection=fake_conn).count() == q.done_count
    assert status(fake_conn).cursor == ""  # a cancelled run never moves the cursor
    assert_counters_match(q)


# --- idempotency and one run at a time ----------------------------------------------------------------------
def test_idempotency_key(fake_conn, fake_kind):
    fake_kind.__init__(3)
    first = services.sync_start(connection=fake_conn, resource="customers", idempotency_key="k-1")
    again = services.sync_start(connection=fake_conn, resource="customers", idempotency_key="k-1")
    assert first.created and not again.created and again.reason == "idempotent"
    assert again.queue.pk == first.queue.pk
    assert SyncQueue.objects.count() == 1
    with pytest.raises(services.IdempotencyConflict) as err:
        services.sync_start(connection=fake_conn, resource="customers", idempotency_key="k-1", full_scan=True)
    assert err.value.http_status == 422 and f"#{first.queue.pk}" in str(err.value)
    with pytest.raises(services.IdempotencyConflict):
        services.sync_start(connection=fake_conn, resource="customers", idempotency_key="k-1", params={"x": 1})


def test_a_second_trigger_gets_the_running_queue(fake_conn, fake_kind):
    fake_kind.__init__(3)
    first = services.sync_start(connection=fake_conn, resource="customers", enqueue=False)
    second = services.sync_start(connection=fake_conn, resource="customers", enqueue=False)
    assert second.queue.pk == first.queue.pk and second.reason == "running" and not second.created
    assert SyncQueue.objects.count() == 1


def test_unknown_resource_is_a_400(fake_conn, fake_kind):
    with pytest.raises(services.UnknownResourceError) as err:
        services.sync_start(connection=fake_conn, resource="nope")
    assert err.value.http_status == 400


# --- fetch failures, auth, cursor ---------------------------------------------------------------------------
def test_a_bad_first_page_records_failed_status_by_upsert(fake_conn, fake_kind):
    fake_kind.__init__(5)
    fake_kind.fail_pages[0] = BadPage("malformed JSON from /customers")
    assert not SyncStatus.objects.exists()
    q = start(fake_conn)  # does not raise
    assert q.state == QueueState.FAILED and q.action_required
    st = status(fake_conn)
    assert st.state == StatusState.FAILED and "malformed JSON" in st.last_error and st.cursor == ""
    assert st.finished_at is not None and st.last_queue_id == q.pk
    assert "run.failed" in events(q) and "queue.failed" in events(q)
    fake_conn.refresh_from_db()
    assert fake_conn.consecutive_failures == 1 and not fake_conn.needs_reauth


def test_an_auth_error_marks_the_connection_needs_reauth(fake_conn, fake_kind):
    fake_kind.__init__(5)
    fake_kind.fail_pages[0] = AuthError("HTTP 401 from GET /customers: invalid token", status=401)
    q = start(fake_conn)
    assert q.state == QueueState.FAILED
    fake_conn.refresh_from_db()
    assert fake_conn.needs_reauth and fake_conn.health == "down"
    assert status(fake_conn).state == StatusState.FAILED and "401" in status(fake_conn).last_error
    assert SyncActivity.objects.filter(connection=fake_conn, event="connection.needs_reauth").exists()
    with pytest.raises(services.ConnectionUnavailable):
        services.sync_start(connection=fake_conn, resource="customers")


def test_cursor_advances_only_when_done(fake_conn, fake_kind):
    fake_kind.__init__(5)
    assert start(fake_conn).state == QueueState.DONE
    assert status(fake_conn).cursor == "5"
    # Next run is incremental: only records past the cursor are fetched.
    fake_kind.records += [fake_kind.make(6), fake_kind.make(7, email="")]
    q = start(fake_conn)
    assert q.state == QueueState.PARTIAL and q.total_count == 2 and q.cursor_from == "5" and q.cursor_to == "7"
    assert status(fake_conn).cursor == "5"  # partial: stays
    # A failed fetch later in paging keeps it too, even though some lines were stored.
    fake_kind.records += [fake_kind.make(i) for i in range(8, 30)]
    fake_kind.fail_pages[1] = TransientError("HTTP 500")
    q = services.queue_force_done(queue=q)
    assert status(fake_conn).cursor == "7"
    q3 = start(fake_conn)
    assert q3.state == QueueState.PARTIAL and q3.fetch_error and status(fake_conn).cursor == "7"
    fake_kind.fail_pages.clear()
    q3 = services.queue_retry(queue=q3)
    q3.refresh_from_db()
    assert q3.state == QueueState.DONE and status(fake_conn).cursor == "29"
    # Everything but record 7, whose line the user force-cancelled.
    assert set(Customer.objects.filter(connection=fake_conn).values_list("external_id", flat=True)) == {
        str(i) for i in range(1, 30) if i != 7
    }


@pytest.mark.parametrize("mode", ["ignore_paging", "repeat_token"])
def test_a_pagination_loop_is_detected(fake_conn, fake_kind, mode):
    fake_kind.__init__(35)
    setattr(fake_kind, mode, True)
    q = start(fake_conn)
    assert q.state in (QueueState.FAILED, QueueState.PARTIAL)
    assert "pagination" in q.fetch_error.lower() or "paging" in q.fetch_error.lower()
    assert fake_kind.page_calls < 10
    assert status(fake_conn).state == StatusState.FAILED and status(fake_conn).cursor == ""


# --- the webhook lane ----------------------------------------------------------------------------------------
def test_webhook_lane_dedupes_by_external_id(fake_conn, fake_kind):
    from tests.fakes import FakeUpstream

    rec = FakeUpstream.make(1)
    q = services.sync_enqueue_records(connection=fake_conn, resource="customers", records=[rec], enqueue=False)
    q2 = services.sync_enqueue_records(
        connection=fake_conn, resource="customers", records=[rec, FakeUpstream.make(2)], enqueue=False
    )
    assert q2.pk == q.pk and q.lane == "webhook"
    changed = {**rec, "first_name": "Changed"}
    services.sync_enqueue_records(connection=fake_conn, resource="customers", records=[changed], enqueue=False)
    assert SyncQueueLine.objects.filter(queue=q).count() == 2
    assert SyncQueueLine.objects.get(queue=q, external_id="1").payload["first_name"] == "Changed"
    assert_counters_match(q)
    # A run of the same resource is its own lane: both may be active.
    run = services.sync_start(connection=fake_conn, resource="customers", enqueue=False)
    assert run.created
    assert engine.run_queue(q.pk) == QueueState.DONE
    assert Customer.objects.get(connection=fake_conn, external_id="1").first_name == "Changed"
    assert not SyncStatus.objects.filter(connection=fake_conn).exists()  # webhooks do not touch run status
    # The next push opens a new webhook queue; a deletion marks the row deleted.
    q3 = services.sync_enqueue_records(connection=fake_conn, resource="customers", records=[rec], deleted=True)
    assert q3.pk != q.pk
    assert Customer.objects.get(connection=fake_conn, external_id="1").deleted_at is not None


def test_a_newer_webhook_snapshot_of_a_held_line_is_not_lost(fake_conn, fake_kind):
    from tests.fakes import FakeUpstream

    q = services.sync_enqueue_records(
        connection=fake_conn, resource="customers", records=[FakeUpstream.make(1)], enqueue=False
    )
    runner = engine.QueueRunner(q)
    held = runner.claim(10)
    assert len(held) == 1
    services.sync_enqueue_records(
        connection=fake_conn, resource="customers", records=[FakeUpstream.make(1, first_name="Newer")], enqueue=False
    )
    runner.process_batch(held)  # the old snapshot's worker cannot mark the line done any more
    line = SyncQueueLine.objects.get(queue=q)
    assert line.state == LineState.DRAFT and line.payload["first_name"] == "Newer"
    assert_counters_match(q)
    assert engine.run_queue(q.pk) == QueueState.DONE
    assert Customer.objects.get(connection=fake_conn, external_id="1").first_name == "Newer"


# --- reaper and purge ------------------------------------------------------------------------------------------
def test_reaper_returns_expired_leases_counting_the_attempt(fake_conn, fake_kind, fake_clock, settings):
    fake_kind.__init__(6)
    q = start(fake_conn, enqueue=False)
    runner = engine.QueueRunner(q, batch_size=4)
    runner.process_on_fetch = False  # every record a draft line, so that a batch can be claimed and lost
    runner._take_fetch_lease()
    for group in runner._prefetched(
        engine.FetchContext(runner.client or runner.connector.client(fake_conn), "", None, False, {})
    ):
        runner._store_pages(group)
    held = runner.claim(4)  # ... and the worker dies here
    assert len(held) == 4
    assert services.lines_reap()["returned"] == 0  # leases still valid
    fake_clock.advance(settings.SYNC_LEASE_SECONDS + 1)
    result = services.lines_reap()  # returns the lines and resumes the queue (inline in tests)
    assert result["returned"] == 4 and result["failed"] == 0 and result["resumed"] == 1
    q.refresh_from_db()
    assert q.state == QueueState.DONE and Customer.objects.filter(connection=fake_conn).count() == 6
    attempts = dict(SyncQueueLine.objects.filter(queue=q).values_list("external_id", "attempts"))
    assert attempts == {"1": 2, "2": 2, "3": 2, "4": 2, "5": 1, "6": 1}  # the crash counted on the held lines
    assert "lines.reaped" in events(q) and "queue.resumed" in events(q)
    assert_counters_match(q)


def test_reaper_fails_lines_out_of_attempts(fake_conn, fake_kind, fake_clock, settings, monkeypatch):
    """A line that kills its worker every time ends failed instead of looping."""
    from tests.fakes import FakeUpstream

    enqueued: list[int] = []
    monkeypatch.setattr(services, "enqueue_queue", enqueued.append)  # the resumed task never gets to run
    q = services.sync_enqueue_records(
        connection=fake_conn, resource="customers", records=[FakeUpstream.make(1), FakeUpstream.make(2)], enqueue=False
    )
    runner = engine.QueueRunner(q)
    for crash in range(1, settings.SYNC_MAX_ATTEMPTS + 1):
        fake_clock.advance(3600)  # past any backoff
        held = runner.claim(1)  # a worker takes line 1 ... and dies
        assert [ln.external_id for ln in held] == ["1"] and held[0].attempts == crash
        fake_clock.advance(settings.SYNC_LEASE_SECONDS + 1)
        result = services.lines_reap()
        assert enqueued[-1] == q.pk  # every reap resumes the queue
        if crash < settings.SYNC_MAX_ATTEMPTS:
            assert result["returned"] == 1 and result["failed"] == 0
    assert result["failed"] == 1 and result["returned"] == 0
    line = SyncQueueLine.objects.get(queue=q, external_id="1")
    assert line.state == LineState.FAILED and line.attempts == settings.SYNC_MAX_ATTEMPTS
    assert "lease expired" in line.last_error
    assert SyncActivity.objects.filter(queue=q, event="line.failed", line=line).exists()
    q.refresh_from_db()
    assert q.action_required
    assert_counters_match(q)
    # The rest of the queue still finishes; the poisoned line leaves it partial.
    assert engine.run_queue(q.pk) == QueueState.PARTIAL


def test_purge_removes_old_finished_queues_only(fake_conn, fake_kind, fake_clock):
    fake_kind.__init__(2)
    old = start(fake_conn)
    fake_clock.advance(31 * 86400)
    recent = start(fake_conn)
    active = start(fake_conn, enqueue=False)
    assert services.queues_purge() == 1
    assert not SyncQueue.objects.filter(pk=old.pk).exists()
    assert not SyncQueueLine.objects.filter(queue_id=old.pk).exists()
    assert not SyncActivity.objects.filter(queue_id=old.pk).exists()
    assert set(SyncQueue.objects.values_list("pk", flat=True)) == {recent.pk, active.pk}
    fake_clock.advance(1)
    assert services.queues_purge(days=0) == 1  # the recent finished one; never the active one
    assert SyncQueue.objects.filter(pk=active.pk).exists()


def test_deleting_a_queue_or_its_connection_through_the_orm_deletes_its_lines(fake_conn, fake_kind, org):
    """The lines' queue key has no database constraint (sync.models.SyncQueueLine says why): Django's
    cascade is what deletes a deleted queue's lines, and a line cannot outlive its queue that way."""
    from connectors.models import Connection

    fake_kind.__init__(3)
    first, second = start(fake_conn), start(fake_conn, enqueue=False, full_scan=True)
    engine.run_queue(second.pk)
    assert SyncQueueLine.objects.filter(queue_id=second.pk).count() == 3
    SyncQueue.objects.get(pk=second.pk).delete()
    assert not SyncQueueLine.objects.filter(queue_id=second.pk).exists()
    assert SyncQueueLine.objects.filter(queue_id=first.pk).exists()
    Connection.objects.get(pk=fake_conn.pk).delete()
    assert not SyncQueueLine.objects.exists()


# --- the prefetch thread --------------------------------------------------------------------------------------
def test_the_prefetch_thread_does_not_outlive_its_consumer(fake_conn, fake_kind, monkeypatch):
    # Pages of 10: many times what the prefetch buffer holds, so the producer is still fetching.
    fake_kind.__init__(engine.MAX_PREFETCH_PAGES * 10 * 10)
    q = start(fake_conn, enqueue=False)
    runner = engine.QueueRunner(q)
    runner.client = runner.connector.client(fake_conn)
    seen: list[threading.Thread] = []

    def store_then_blow_up(group, **kwargs):
        seen.extend(t for t in threading.enumerate() if t.name == f"fetch-queue-{q.pk}")
        raise RuntimeError("the consumer blew up")

    monkeypatch.setattr(runner, "_store_pages", store_then_blow_up)
    with pytest.raises(RuntimeError, match="the consumer blew up"):
        runner.fetch()
    assert len(seen) == 1
    seen[0].join(timeout=2)
    assert not seen[0].is_alive()


def test_the_same_idempotency_key_resumes_a_run_whose_worker_died(fake_conn, fake_kind, fake_clock, settings):
    fake_kind.__init__(8)
    first = services.sync_start(connection=fake_conn, resource="customers", idempotency_key="job-7", enqueue=False)
    runner = engine.QueueRunner(first.queue, batch_size=3)
    runner.client = runner.connector.client(fake_conn)
    runner.claim = lambda limit: []  # this worker fetches, then dies before processing anything
    runner.fetch()
    assert (
        services.sync_start(connection=fake_conn, resource="customers", idempotency_key="job-7").reason == "idempotent"
    )
    q = first.queue
    q.refresh_from_db()
    assert q.state != QueueState.DONE  # recently touched: not resumed yet
    fake_clock.advance(settings.SYNC_LEASE_SECONDS + 1)
    again = services.sync_start(connection=fake_conn, resource="customers", idempotency_key="job-7")
    assert again.queue.pk == q.pk
    q.refresh_from_db()
    assert q.state == QueueState.DONE and Customer.objects.filter(connection=fake_conn).count() == 8
    assert_counters_match(q)


def test_claims_stop_once_the_queue_is_cancelled(fake_conn, fake_kind):
    from tests.fakes import FakeUpstream

    q = services.sync_enqueue_records(
        connection=fake_conn, resource="customers", records=[FakeUpstream.make(1), FakeUpstream.make(2)], enqueue=False
    )
    runner = engine.QueueRunner(q)
    held = runner.claim(1)
    services.queue_cancel(queue=q)
    assert runner.claim(10) == []
    runner.process_batch(held)  # the held line still settles
    assert services.queue_finalize(queue=q).state == QueueState.CANCELLED
    assert_counters_match(q)


def test_a_line_retried_after_a_cancel_does_not_keep_the_worker_spinning(fake_conn, fake_kind, fake_clock):
    from tests.fakes import FakeUpstream

    fake_kind.flaky["1"] = 1
    q = services.sync_enqueue_records(
        connection=fake_conn, resource="customers", records=[FakeUpstream.make(1)], enqueue=False
    )
    runner = engine.QueueRunner(q)
    held = runner.claim(1)
    services.queue_cancel(queue=q)
    runner.process_batch(held)  # the flaky failure puts the line back to draft, after the cancel
    assert SyncQueueLine.objects.get(queue=q).state == LineState.DRAFT
    runner.process_until_empty()  # returns instead of waiting for a line it may not claim
    assert fake_clock.sleeps == []
    assert services.queue_finalize(queue=q).state == QueueState.CANCELLED
    assert SyncQueueLine.objects.get(queue=q).state == LineState.CANCELLED
    assert_counters_match(q)


def test_running_again_changes_nothing(fake_conn, fake_kind):
    fake_kind.__init__(12)
    start(fake_conn)
    before = {c.external_id: (c.pk, c.email, c.first_name) for c in Customer.objects.filter(connection=fake_conn)}
    again = start(fake_conn, full_scan=True)
    assert again.state == QueueState.DONE and again.done_count == 12
    after = {c.external_id: (c.pk, c.email, c.first_name) for c in Customer.objects.filter(connection=fake_conn)}
    assert after == before  # same rows (same pks), same values: upserts keyed by (connection, external_id)


def test_a_complete_full_scan_marks_missing_rows_deleted(fake_conn, fake_kind, monkeypatch):
    from tests import fakes

    monkeypatch.setattr(fakes.connector.resources["customers"], "mark_missing_deleted", True)
    fake_kind.__init__(15)
    start(fake_conn, full_scan=True)
    del fake_kind.records[2]  # id 3 vanished upstream
    fake_kind.fail_pages[1] = TransientError("HTTP 500")
    start(fake_conn, full_scan=True)  # incomplete scan: must not conclude anything is gone
    assert not Customer.objects.filter(connection=fake_conn, deleted_at__isnull=False).exists()
    fake_kind.fail_pages.clear()
    q = start(fake_conn, full_scan=True)
    assert q.state == QueueState.DONE
    assert list(
        Customer.objects.filter(connection=fake_conn, deleted_at__isnull=False).values_list("external_id", flat=True)
    ) == ["3"]
    assert "records.marked_deleted" in events(q)


def test_retry_while_another_run_is_active_is_a_409(fake_conn, fake_kind):
    fake_kind.__init__(3)
    fake_kind.records[0]["email"] = ""
    partial = start(fake_conn)
    assert partial.state == QueueState.PARTIAL
    running = start(fake_conn, enqueue=False)
    with pytest.raises(services.RunActive) as err:
        services.queue_retry(queue=partial)
    assert err.value.http_status == 409
    partial.refresh_from_db()
    assert partial.state == QueueState.PARTIAL and not partial.is_active  # untouched
    assert SyncQueueLine.objects.filter(queue=partial, state=LineState.FAILED).count() == 1
    services.queue_cancel(queue=running)


# --- pages stored in groups, records processed on fetch --------------------------------------------------------
@pytest.mark.parametrize("bad", ["not_a_list", "same_page_again"])
def test_a_bad_page_in_a_group_still_lets_the_pages_before_it_count(fake_conn, fake_kind, bad):
    from connectors.base import Page, PaginationStalled

    fake_kind.__init__(0)
    q = start(fake_conn, enqueue=False)
    runner = engine.QueueRunner(q)
    assert runner._take_fetch_lease()
    first = Page(records=[fake_kind.make(1), fake_kind.make(2)], next_token=2)
    second = Page(records={"oops": 1}, next_token=3) if bad == "not_a_list" else Page(first.records, next_token=3)
    with pytest.raises(BadPage if bad == "not_a_list" else PaginationStalled):
        runner._store_pages([first, second])
    q.refresh_from_db()
    assert (q.fetch_token, q.pages_fetched, q.total_count, q.done_count) == (2, 1, 2, 2)
    assert set(Customer.objects.filter(connection=fake_conn).values_list("external_id", flat=True)) == {"1", "2"}
    assert_counters_match(q)


def test_processing_on_fetch_writes_rows_and_done_lines_in_the_page_transaction(fake_conn, fake_kind):
    fake_kind.__init__(0)
    q = start(fake_conn, enqueue=False)
    runner = engine.QueueRunner(q)
    assert runner._take_fetch_lease()
    from connectors.base import Page

    no_email = {**fake_kind.make(3), "email": ""}  # the mapper rejects it: its own line fails, at once
    flaky = fake_kind.make(4)
    fake_kind.flaky["4"] = 1  # a mapper error that is not a MappingError: retried later
    drafts = runner._store_pages([Page([fake_kind.make(1), fake_kind.make(2), no_email, flaky], next_token=None)])
    assert drafts == 1
    lines = {line.external_id: line for line in SyncQueueLine.objects.filter(queue=q)}
    assert {k: (v.state, v.attempts) for k, v in lines.items()} == {
        "1": ("done", 1),
        "2": ("done", 1),
        "3": ("failed", 1),
        "4": ("draft", 1),
    }
    assert lines["4"].next_attempt_at is not None and "flaky" in lines["4"].last_error
    # Changed on purpose (issue 20): a line done on the fetch path keeps no payload; the lines a retry needs
    # (failed, draft) keep theirs.
    assert lines["1"].payload == {}, "no payload"
    assert lines["3"].payload == no_email and lines["4"].payload == flaky, "a retry's payload is kept"
    assert set(Customer.objects.filter(connection=fake_conn).values_list("external_id", flat=True)) == {"1", "2"}
    assert_counters_match(q)
    q.refresh_from_db()
    assert q.action_required


def test_a_group_the_database_rejects_is_stored_as_draft_lines(fake_conn, fake_kind, monkeypatch):
    from django.db import IntegrityError

    from connectors.base import Page

    fake_kind.__init__(0)
    q = start(fake_conn, enqueue=False)
    runner = engine.QueueRunner(q)
    assert runner._take_fetch_lease()

    def reject(*args, **kwargs):
        raise IntegrityError("simulated constraint violation")

    monkeypatch.setattr(engine.bulk, "upsert_rows", reject)
    drafts = runner._store_pages([Page([fake_kind.make(1), fake_kind.make(2)], next_token=5)])
    assert drafts == 2
    q.refresh_from_db()
    assert (q.fetch_token, q.draft_count, q.done_count) == (5, 2, 0)
    assert not Customer.objects.filter(connection=fake_conn).exists()
    monkeypatch.undo()
    runner.process_available()  # the claimed path writes them
    q.refresh_from_db()
    assert q.done_count == 2 and Customer.objects.filter(connection=fake_conn).count() == 2
    assert_counters_match(q)


def test_an_idempotency_key_too_long_is_refused_never_cut(fake_conn, fake_kind):
    fake_kind.__init__(1)
    base = "k" * services.IDEMPOTENCY_KEY_MAX
    ok = services.sync_start(connection=fake_conn, resource="customers", idempotency_key=base, enqueue=False)
    assert ok.created
    with pytest.raises(services.InvalidIdempotencyKey) as err:
        services.sync_start(connection=fake_conn, resource="customers", idempotency_key=base + "x", enqueue=False)
    assert err.value.http_status == 400 and "255" in str(err.value)
    assert SyncQueue.objects.count() == 1
