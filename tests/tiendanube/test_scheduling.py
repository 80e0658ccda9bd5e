import datetime as dt

import pytest
from django_q.models import Schedule

from connectors.models import Connection
from connectors.tiendanube.models import Tier
from connectors.tiendanube.sandbox import _fmt
from sync import runpolicy, scheduler
from sync.connection_runs import connection_sync
from sync.models import QueueState, RunSchedule, RunSlot, ScheduleState, SyncQueue

pytestmark = pytest.mark.django_db


def due_at(conn, when):
    """Whether the kind's scheduler tick would enqueue this store at ``when`` (stores have no Schedule row of
    their own since the fleet tick: sync.scheduler)."""
    return scheduler.due_units("tiendanube", now=when).filter(connection=conn).exists()


def no_store_schedule(conn):
    return not Schedule.objects.filter(name=f"tiendanube:{conn.pk}").exists()


def test_tier_follows_activity_and_schedule_interval(tn_sandbox, store_conn, fake_clock):
    sb = tn_sandbox(stores=1, records=5)
    conn = store_conn(sb)
    # Newest record changed 1 h before "now": high priority, every 5 minutes.
    fake_clock._now = dt.datetime(2025, 12, 1, 1, 5, tzinfo=dt.UTC)
    assert connection_sync(connection_id=conn.pk).outcome == "success"
    sched = RunSchedule.objects.get(connection=conn, resource="")
    assert sched.tier == Tier.HIGH
    assert sched.next_sync_at == fake_clock.now() + dt.timedelta(minutes=5)
    runpolicy.schedules_register()
    assert no_store_schedule(conn) and Schedule.objects.get(name="tiendanube:tick").minutes == 1
    assert due_at(conn, sched.next_sync_at) and not due_at(conn, sched.next_sync_at - dt.timedelta(seconds=1))
    # Two days without changes: medium, every 30 minutes.
    fake_clock.advance(2 * 86400)
    connection_sync(connection_id=conn.pk)
    sched.refresh_from_db()
    assert sched.tier == Tier.MEDIUM and not due_at(conn, fake_clock.now() + dt.timedelta(minutes=29))
    assert sched.next_sync_at == fake_clock.now() + dt.timedelta(minutes=30)
    # A week idle: low, every 6 hours.
    fake_clock.advance(7 * 86400)
    connection_sync(connection_id=conn.pk)
    sched.refresh_from_db()
    assert sched.tier == Tier.LOW and sched.next_sync_at == fake_clock.now() + dt.timedelta(minutes=360)
    # The store wakes up: a record changes now -> high again, and the incremental run fetches it.
    sb.touch("1001", "products", 1001 * 100_000 + 2, fake_clock.now(), name={"es": "Renamed"})
    connection_sync(connection_id=conn.pk)
    sched.refresh_from_db()
    assert sched.tier == Tier.HIGH
    from commerce.models import Product

    assert Product.objects.get(connection=conn, external_id=str(1001 * 100_000 + 2)).name == "Renamed"


def test_backoff_then_needs_reauth_after_three_failures(tn_sandbox, store_conn, fake_clock, settings):
    settings.SYNC_HTTP_MAX_TRIES = 1
    sb = tn_sandbox(stores=1, records=3)
    conn = store_conn(sb)
    sb.app.routes.insert(
        0,
        (
            "GET",
            __import__("re").compile(r"^/v1/1001/products$"),
            lambda req: __import__("connectors.sandbox.server", fromlist=["Response"]).Response.json(
                {"code": 500, "message": "boom"}, 500
            ),
        ),
    )
    expected = [5, 15]
    for minutes in expected:
        result = connection_sync(connection_id=conn.pk)
        assert result.outcome == "failed"
        sched = RunSchedule.objects.get(connection=conn, resource="")
        assert sched.state == ScheduleState.BACKOFF
        assert sched.next_sync_at == fake_clock.now() + dt.timedelta(minutes=minutes)
        assert due_at(conn, sched.next_sync_at) and not due_at(conn, sched.next_sync_at - dt.timedelta(seconds=1))
        fake_clock.advance(minutes * 60)
    assert connection_sync(connection_id=conn.pk).outcome == "needs_reauth"
    sched.refresh_from_db()
    conn.refresh_from_db()
    assert sched.failures_in_row == 3 and sched.state == ScheduleState.NEEDS_REAUTH
    assert conn.needs_reauth and not due_at(conn, fake_clock.now() + dt.timedelta(days=30))
    # A paused store is skipped without calling upstream.
    calls = sb.api_calls
    assert connection_sync(connection_id=conn.pk).outcome == "skipped"
    assert sb.api_calls == calls


def test_backoff_delays_are_5_15_45():
    from connectors.tiendanube.connector import connector

    def backoff_delay(n):
        return runpolicy.backoff_delay(connector.policy, n)

    assert [backoff_delay(n) for n in (1, 2, 3, 4)] == [dt.timedelta(minutes=m) for m in (5, 15, 45, 45)]


def test_success_after_failure_resets_backoff(tn_sandbox, store_conn, fake_clock, settings):
    settings.SYNC_HTTP_MAX_TRIES = 1
    sb = tn_sandbox(stores=1, records=3)
    conn = store_conn(sb)
    sb.stores["1001"].installed = False  # -> 401? no: simulate a transient failure instead
    sb.stores["1001"].installed = True
    from connectors.sandbox.server import Response

    route = ("GET", __import__("re").compile(r"^/v1/1001/orders$"), lambda req: Response.json({"message": "down"}, 503))
    sb.app.routes.insert(0, route)
    assert connection_sync(connection_id=conn.pk).outcome == "failed"
    sb.app.routes.remove(route)
    fake_clock.advance(300)
    assert connection_sync(connection_id=conn.pk).outcome == "success"
    sched = RunSchedule.objects.get(connection=conn, resource="")
    assert sched.failures_in_row == 0 and sched.state == ScheduleState.ACTIVE


def test_401_marks_needs_reauth_at_once_and_pauses(tn_sandbox, store_conn, fake_clock):
    sb = tn_sandbox(stores=1, records=3)
    conn = store_conn(sb)
    sb.uninstall("1001")
    result = connection_sync(connection_id=conn.pk)
    assert result.outcome == "needs_reauth"
    conn.refresh_from_db()
    sched = RunSchedule.objects.get(connection=conn, resource="")
    assert conn.needs_reauth and sched.failures_in_row == 1 and sched.state == ScheduleState.NEEDS_REAUTH
    assert not due_at(conn, fake_clock.now() + dt.timedelta(days=30)) and no_store_schedule(conn)
    assert conn.credentials["access_token"] not in (sched.last_error + conn.last_error)


def test_parallel_cap_and_same_store_never_twice(tn_sandbox, store_conn, org, make_connection, settings):
    settings.TIENDANUBE_MAX_PARALLEL_SYNCS = 3
    sb = tn_sandbox(stores=5, records=2)
    conns = [store_conn(sb, str(1001 + i)) for i in range(5)]
    held = [runpolicy.slot_acquire(c) for c in conns[:3]]
    assert all(held) and RunSlot.objects.filter(connection__isnull=False).count() == 3
    with pytest.raises(runpolicy.AlreadyRunning):
        runpolicy.slot_acquire(conns[0])
    # A fourth store finds every slot taken: its sync is deferred and nothing is fetched.
    result = connection_sync(connection_id=conns[3].pk)
    assert result.outcome == "deferred"
    assert not SyncQueue.objects.filter(connection=conns[3]).exists()
    # A store already syncing is not started a second time.
    assert connection_sync(connection_id=conns[1].pk).outcome == "running"
    runpolicy.slot_release(held[0])
    assert connection_sync(connection_id=conns[3].pk).outcome == "success"
    assert RunSlot.objects.filter(connection__isnull=False).count() == 2


def test_expired_slot_of_a_dead_worker_is_reclaimed(tn_sandbox, store_conn, settings, fake_clock):
    settings.TIENDANUBE_MAX_PARALLEL_SYNCS = 1
    sb = tn_sandbox(stores=2, records=2)
    a, b = store_conn(sb, "1001"), store_conn(sb, "1002")
    runpolicy.slot_acquire(a)
    assert connection_sync(connection_id=b.pk).outcome == "deferred"
    fake_clock.advance(3600)  # past the lease: the holder died
    assert connection_sync(connection_id=b.pk).outcome == "success"


def test_incremental_sync_uses_updated_at_min_and_overlap(tn_sandbox, store_conn, fake_clock):
    sb = tn_sandbox(stores=1, records=4)
    conn = store_conn(sb)
    connection_sync(connection_id=conn.pk)
    sb.app.requests_seen.clear()
    connection_sync(connection_id=conn.pk)
    lists = [r for r in sb.app.requests_seen if r.path == "/v1/1001/products"]
    newest = max(p["updated_at"] for p in sb.stores["1001"].data["products"])
    assert lists and lists[0].arg("updated_at_min").startswith(newest[:19])
    assert lists[0].arg("per_page") == "200"
    assert all(r.header("authentication", "").startswith("bearer ") for r in lists)
    assert all("authorization" not in r.headers for r in lists)
    assert Connection.objects.get(pk=conn.pk).statuses.get(resource="products").cursor.startswith(newest[:19])


def test_result_cap_splits_into_date_windows(tn_sandbox, store_conn, settings):
    settings.TIENDANUBE_RESULT_CAP = 10
    settings.TIENDANUBE_PAGE_SIZE = 4
    settings.TIENDANUBE_BUCKET_DRAIN = 200.0
    sb = tn_sandbox(stores=1, records=35, result_cap=10, drain=200.0)
    conn = store_conn(sb)
    assert connection_sync(connection_id=conn.pk).outcome == "success"
    from commerce.models import Product

    assert Product.objects.filter(connection=conn).count() == 35
    windows = {
        (r.arg("updated_at_min"), r.arg("updated_at_max"))
        for r in sb.app.requests_seen
        if r.path == "/v1/1001/products"
    }
    assert len(windows) > 3
    assert sb.count_429 == 0


def test_request_without_user_agent_gets_400(tn_sandbox):
    import requests

    sb = tn_sandbox(stores=1)
    sb.stores["1001"].installed, sb.stores["1001"].token = True, "t"
    r = requests.get(
        f"{sb.base_url}/v1/1001/products", headers={"Authentication": "bearer t", "User-Agent": ""}, timeout=5
    )
    assert r.status_code == 400
    assert _fmt(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) == "2026-01-01T00:00:00+0000"


def test_parallel_cap_holds_for_runs_started_outside_the_store_task(
    tn_sandbox, store_conn, staff, settings, fake_clock
):
    """The generic API trigger (and Sync now, retries, the reaper's resume: all the task sync.tasks.run_queue)
    and manage.py sync_run must not run a store sync while the cap is reached or the store is syncing."""
    from django.core.management import CommandError, call_command
    from rest_framework.test import APIClient

    from sync import services as sync_services
    from sync import tasks
    from sync.models import SyncActivity

    settings.TIENDANUBE_MAX_PARALLEL_SYNCS = 1
    sb = tn_sandbox(stores=2, records=2)
    a, b = store_conn(sb, "1001"), store_conn(sb, "1002")
    held = runpolicy.slot_acquire(a)  # store A is syncing and takes the only slot
    api = APIClient()
    api.force_authenticate(staff)
    r = api.post(f"/api/connections/{b.pk}/resources/products/sync", {}, format="json")
    assert r.status_code == 202
    queue = SyncQueue.objects.get(pk=r.json()["queue_id"])
    # Q_SYNC ran the trigger's task (sync.tasks.run_queue) inline: it was held back, nothing was fetched.
    queue.refresh_from_db()
    assert queue.is_active and queue.total_count == 0 and queue.started_at is None
    assert SyncActivity.objects.filter(queue=queue, event="tiendanube.run_held_back").count() == 1
    calls_before = sb.api_calls
    assert tasks.run_queue(queue.pk) == "held_back"  # a re-delivery (the reaper's resume) waits too
    assert sb.api_calls == calls_before  # the upstream was not asked for anything
    # The foreground command is held back too.
    with pytest.raises(CommandError, match="held back"):
        call_command("sync_run", str(b.pk), "orders")
    # Store A itself is "already syncing": a second run of it waits as well.
    qa = sync_services.sync_start(connection=a, resource="customers", enqueue=False).queue
    assert tasks.run_queue(qa.pk) == "held_back"
    # Once the slot is free, the next delivery (the reaper's resume) runs it, inside a slot it then frees.
    runpolicy.slot_release(held)
    assert tasks.run_queue(queue.pk) == QueueState.DONE
    assert RunSlot.objects.filter(connection__isnull=False).count() == 0
