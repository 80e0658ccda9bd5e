"""Fleet scale (issue 21): the scheduler tick, the capacity in the scheduler status, bulk onboarding.
Behaviour and constant query counts at two sizes; speed lives in bench/fleet.py (B9)."""

import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.db import connection as db_connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ, Schedule
from django_q.signing import SignedPackage

from connectors.models import Connection
from connectors.tiendanube import onboarding
from sync import runpolicy, scheduler, tally
from sync.connection_runs import connection_sync
from sync.models import RunSchedule, RunSlot, RunTally, ScheduleState, SyncActivity, SyncQueue

pytestmark = pytest.mark.django_db
KIND = "tiendanube"
MIN = dt.timedelta(minutes=1)


@pytest.fixture
def broker(monkeypatch):
    """The ORM broker for real (tests run django-q2 inline otherwise): the tick's tasks land in OrmQ."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)


@pytest.fixture
def fleet(org, make_connection, fake_clock):
    """``n`` connected stores whose whole-connection units are due ``late`` ago (oldest first by index)."""

    def make(n, *, late=MIN, tier="high", start=0):
        now = fake_clock.now()
        conns = []
        for i in range(start, start + n):
            conn = make_connection(
                org,
                kind=KIND,
                external_account_id=str(5000 + i),
                name=f"store {5000 + i}",
                credentials={"access_token": f"secret-token-{i}"},
            )
            RunSchedule.objects.create(
                organization=org,
                connection=conn,
                tier=tier,
                next_sync_at=now - late - dt.timedelta(seconds=i),
                last_success_at=now,  # fresh: logging in (login_sync) enqueues none of them
            )
            conns.append(conn)
        return conns

    return make


def queued_connection_ids():
    return sorted(SignedPackage.loads(q.payload)["args"][0] for q in OrmQ.objects.all())


# --- 1. The scheduler tick ---------------------------------------------------------------------------------------
def test_tick_enqueues_due_stores_once_and_skips_the_rest(fleet, broker, fake_clock, settings):
    due = fleet(3)
    future, paused, running, reauth = fleet(4, late=-10 * MIN, start=10)
    RunSchedule.objects.filter(connection__in=[paused]).update(next_sync_at=fake_clock.now() - MIN)
    RunSchedule.objects.filter(connection=paused).update(state=ScheduleState.NEEDS_REAUTH)
    RunSchedule.objects.filter(connection__in=[running, reauth]).update(next_sync_at=fake_clock.now() - MIN)
    runpolicy.slot_acquire(running)
    Connection.objects.filter(pk=reauth.pk).update(needs_reauth=True)
    report = scheduler.tick(KIND)
    assert report.enqueued == 3
    assert queued_connection_ids() == sorted(c.pk for c in due)
    payloads = [SignedPackage.loads(q.payload) for q in OrmQ.objects.all()]
    assert {p["func"] for p in payloads} == {"sync.tasks.sync_connection"}
    assert all(p["args"][1] == "schedule" for p in payloads)
    assert not any("secret-token" in str(p) for p in payloads)  # ids only, never a token
    assert set(RunSchedule.objects.filter(queued_at__isnull=False).values_list("connection_id", flat=True)) == {
        c.pk for c in due
    }
    # Queued: a second tick enqueues nothing more; no per-store django-q2 Schedule exists.
    assert scheduler.tick(KIND).enqueued == 0 and OrmQ.objects.count() == 3
    assert not Schedule.objects.filter(name__in=[f"{KIND}:{c.pk}" for c in due]).exists()
    # A queued mark that went stale (the task vanished with the broker) is enqueued again.
    fake_clock.advance(31 * 60)
    assert scheduler.tick(KIND).enqueued >= 3


def test_catch_up_is_bounded_per_tick_oldest_first(fleet, broker, settings):
    settings.SYNC_TICK_MAX_ENQUEUE = 3
    settings.SYNC_TICK_CHUNK = 2  # several short transactions per tick
    conns = fleet(7, late=60 * MIN)  # an outage: seven stores overdue
    first = scheduler.tick(KIND)
    assert first.enqueued == 3 and first.chunks == 2
    oldest = sorted(conns, key=lambda c: -int(c.external_account_id))[:3]  # higher index = due earlier
    assert queued_connection_ids() == sorted(c.pk for c in oldest)
    # The broker holds at most SYNC_TICK_MAX_ENQUEUE of the kind: nothing more until those start.
    assert scheduler.tick(KIND).enqueued == 0
    RunSchedule.objects.filter(connection__in=oldest).update(queued_at=None, next_sync_at=None)  # they started
    assert scheduler.tick(KIND).enqueued == 3


def test_tick_queries_do_not_grow_with_the_fleet(org, make_connection, fleet, broker, settings):
    settings.SYNC_TICK_CHUNK = 1000

    def measure():
        with CaptureQueriesContext(db_connection) as ctx:
            report = scheduler.tick(KIND)
        return report.enqueued, len(ctx.captured_queries)

    fleet(4)
    small = measure()
    RunSchedule.objects.update(queued_at=None)
    OrmQ.objects.all().delete()
    fleet(60, start=100)
    large = measure()
    assert small[0] == 4 and large[0] == 64
    assert small[1] == large[1]


def test_tick_runs_the_store_sync_and_the_next_run_follows_its_tier(
    tn_sandbox, store_conn, fake_clock, django_capture_on_commit_callbacks
):
    sb = tn_sandbox(stores=1, records=3)
    conn = store_conn(sb)
    runpolicy.schedules_register()  # the tick schedule; the unit gets a first run within its interval
    assert Schedule.objects.get(name=f"{KIND}:tick").func == runpolicy.TICK_TASK
    sched = RunSchedule.objects.get(connection=conn, resource="")
    assert fake_clock.now() <= sched.next_sync_at < fake_clock.now() + 5 * MIN
    fake_clock.advance(5 * 60)
    with django_capture_on_commit_callbacks(execute=True):  # django-q2 runs the task inline in tests
        assert scheduler.tick(KIND).enqueued == 1
    sched.refresh_from_db()
    assert sched.queued_at is None and sched.last_success_at == fake_clock.now()
    assert sched.next_sync_at > fake_clock.now()
    assert set(SyncQueue.objects.filter(connection=conn).values_list("origin", flat=True)) == {"schedule"}
    assert RunTally.objects.get(kind=KIND).runs == 1


def test_a_deferred_run_is_enqueued_again_by_the_tick(tn_sandbox, store_conn, settings, fake_clock, broker):
    settings.TIENDANUBE_MAX_PARALLEL_SYNCS = 1
    sb = tn_sandbox(stores=2, records=1)
    a, b = store_conn(sb, "1001"), store_conn(sb, "1002")
    runpolicy.schedules_register()
    RunSchedule.objects.filter(connection=b).update(next_sync_at=fake_clock.now() - MIN)
    runpolicy.slot_acquire(a)
    assert scheduler.tick(KIND).enqueued == 1
    assert connection_sync(connection_id=b.pk).outcome == "deferred"  # the worker found every slot busy
    sched = RunSchedule.objects.get(connection=b, resource="")
    assert sched.queued_at is None and sched.next_sync_at == fake_clock.now() + MIN
    fake_clock.advance(60)
    assert scheduler.tick(KIND).enqueued == 1


def test_registration_replaces_per_store_schedules_by_one_tick(org, make_connection, fake_clock):
    conns = [make_connection(org, kind=KIND, external_account_id=str(700 + i)) for i in range(30)]
    Schedule.objects.create(
        name=f"{KIND}:{conns[0].pk}", func="sync.tasks.sync_connection", schedule_type=Schedule.MINUTES, minutes=5
    )  # left by an older release
    report = runpolicy.schedules_register()
    assert report.changes[f"{KIND}:tick"] == "created" and report.changes[f"{KIND}:{conns[0].pk}"] == "deleted"
    assert not Schedule.objects.filter(func="sync.tasks.sync_connection").exists()
    runs = list(RunSchedule.objects.filter(connection__in=conns, resource="").values_list("next_sync_at", flat=True))
    now = fake_clock.now()
    assert len(runs) == 30 and all(now <= r < now + 5 * MIN for r in runs)
    assert len(set(runs)) >= 20  # spread within the 5-minute tier, not all due at once
    again = runpolicy.schedules_register()
    assert again.count("created") == again.count("updated") == again.count("deleted") == 0


# --- 3. Capacity you can see ---------------------------------------------------------------------------------
def api(user):
    c = Client()
    c.force_login(user)
    return c


def test_status_shows_backlog_lag_throughput_and_whether_the_cap_keeps_up(fleet, staff, fake_clock, settings):
    settings.TIENDANUBE_MAX_PARALLEL_SYNCS = 3
    fleet(4, late=12 * MIN)  # high tier (5 min): 4 stores due, the oldest 12 min + 3 s late
    fleet(2, late=-60 * MIN, tier="low", start=10)  # not due
    running = fleet(1, late=MIN, start=20)[0]
    runpolicy.slot_acquire(running)
    tally.tally_record(KIND, "high", ok=True, seconds=30.0)
    tally.tally_record(KIND, "high", ok=False, seconds=30.0)
    body = api(staff).get("/api/tiendanube/scheduler/status/").json()
    cap = body["capacity"]
    high = next(t for t in cap["tiers"] if t["tier"] == "high")
    low = next(t for t in cap["tiers"] if t["tier"] == "low")
    assert high["stores"] == 5 and high["backlog"] == 4 and low["backlog"] == 0
    assert high["lag_seconds"] == 12 * 60 + 3 and high["late"] is True
    assert high["runs_last_hour"] == 2 and high["failures_last_hour"] == 1
    assert cap["max_parallel"] == 3 and cap["mean_run_seconds"] == 30.0
    # 3 slots at 30 s a run serve 360 runs/h; 5 stores every 5 min + 2 every 6 h need 60.33/h: keeps up.
    assert cap["capacity_per_hour"] == 360.0 and cap["runs_needed_per_hour"] == pytest.approx(60.3, abs=0.1)
    assert cap["keeps_up"] is True
    settings.TIENDANUBE_MAX_PARALLEL_SYNCS = 1
    fleet(200, late=-MIN, start=100)  # 205 stores every 5 min need 2,460 runs/h; 1 slot serves 120
    cap = api(staff).get("/api/tiendanube/scheduler/status/").json()["capacity"]
    assert cap["keeps_up"] is False
    assert body["late_count"] == 4 and [s["late_seconds"] for s in body["late"]][0] == 12 * 60 + 3


def test_status_is_paginated_with_a_late_filter_and_org_scoped(fleet, staff, other_staff):
    fleet(7, late=MIN)
    fleet(5, late=-MIN, start=10)
    client = api(staff)
    first = client.get("/api/tiendanube/scheduler/status/?page_size=5").json()
    assert first["total"] == 12 and first["pages"] == 3 and len(first["stores"]) == 5
    last = client.get("/api/tiendanube/scheduler/status/?page_size=5&page=3").json()
    assert len(last["stores"]) == 2
    assert {s["id"] for s in first["stores"]}.isdisjoint({s["id"] for s in last["stores"]})
    late = client.get("/api/tiendanube/scheduler/status/?late=1&page_size=5").json()
    assert late["stores_matching"] == 7 and late["pages"] == 2
    assert all(s["next_sync_at"] for s in late["stores"])
    assert client.get("/api/tiendanube/scheduler/status/?page_size=100000").status_code == 400
    other = api(other_staff).get("/api/tiendanube/scheduler/status/").json()
    assert other["total"] == 0 and other["stores"] == [] and other["late_count"] == 0


def test_status_queries_do_not_grow_with_the_fleet(fleet, staff):
    client = api(staff)
    client.get("/api/tiendanube/scheduler/status/")  # warm the session

    def count():
        with CaptureQueriesContext(db_connection) as ctx:
            assert client.get("/api/tiendanube/scheduler/status/?page_size=20").status_code == 200
            assert client.get("/admin/tiendanube/storeschedule/").status_code == 200
            assert client.get("/admin/tiendanube/storeschedule/?late=yes").status_code == 200
        return len(ctx.captured_queries)

    fleet(3)
    small = count()
    fleet(60, start=100)
    assert count() == small


def test_admin_shows_capacity_and_late_stores(fleet, staff):
    fleet(2, late=MIN)
    fleet(1, late=-MIN, start=10)
    html = api(staff).get("/admin/tiendanube/storeschedule/?late=yes").content.decode()
    assert 'id="fleet-capacity"' in html and "TIENDANUBE_MAX_PARALLEL_SYNCS" in html
    assert "store 5000" in html and "store 5001" in html and "store 5010" not in html


# --- 2. The queue list ------------------------------------------------------------------------------------------
QUEUES = "/admin/sync/syncqueue/"


def history(org, conns, *, state="done"):
    """One finished run per store and resource, as the fleet benchmark's history."""
    SyncQueue.objects.bulk_create(
        SyncQueue(
            organization=org,
            connection=c,
            resource=r,
            origin="schedule",
            is_active=False,
            state=state,
            total_count=10,
            done_count=10,
        )
        for c in conns
        for r in ("products", "orders", "customers")
    )


def listed_queue_ids(html: str) -> set[int]:
    import re

    return {int(pk) for pk in re.findall(r">#(\d+)</a>", html)}


def test_queue_list_filters_never_list_every_connection(fleet, staff, org):
    conns = fleet(30)
    history(org, conns)
    client = api(staff)
    html = client.get(QUEUES).content.decode()
    assert 'data-testid="connection-filter"' in html  # a search box, not one link per connection
    assert not any(f"conn={c.pk}" in html for c in conns)
    assert "?resource=orders" in html and "?kind=tiendanube" in html  # choices from the declarations
    by_store_id = listed_queue_ids(client.get(QUEUES, {"conn": "5007"}).content.decode())
    assert by_store_id == set(SyncQueue.objects.filter(connection=conns[7]).values_list("pk", flat=True))
    by_name = listed_queue_ids(client.get(QUEUES, {"conn": "STORE 501", "resource": "orders"}).content.decode())
    assert by_name == set(
        SyncQueue.objects.filter(connection__in=conns[10:20], resource="orders").values_list("pk", flat=True)
    )
    assert listed_queue_ids(client.get(QUEUES, {"conn": "store_50%"}).content.decode()) == set()  # literal % and _
    assert listed_queue_ids(client.get(QUEUES, {"kind": "woocommerce"}).content.decode()) == set()
    assert (
        len(listed_queue_ids(client.get(QUEUES, {"kind": "tiendanube", "state__exact": "done"}).content.decode())) == 90
    )
    body = client.get("/api/queues", {"connection": conns[3].pk, "resource": "orders"}).json()
    assert body["count"] == 1 and body["results"][0]["connection_id"] == conns[3].pk


def test_queue_list_queries_do_not_grow_with_the_fleet(fleet, staff, org):
    client = api(staff)
    client.get(QUEUES)  # warm the session
    filtered = {
        "state__exact": "done",
        "kind": KIND,
        "conn": "store",
        "resource": "orders",
        "origin__exact": "schedule",
    }

    def count():
        with CaptureQueriesContext(db_connection) as ctx:
            assert client.get(QUEUES).status_code == 200
            assert client.get(QUEUES, filtered).status_code == 200
            assert client.get(QUEUES, {"action_required": "1", "conn": "5001"}).status_code == 200
            assert client.get("/api/queues", {"state": "done", "resource": "orders"}).status_code == 200
        return len(ctx.captured_queries)

    history(org, fleet(3))
    small = count()
    history(org, fleet(60, start=100))
    assert count() == small


# --- 4. Bulk onboarding ------------------------------------------------------------------------------------------
def rows(n, start=0):
    return [
        {"store_id": str(90000 + i), "access_token": f"tok-{i}-abcdefgh", "scope": "read_products"}
        for i in range(start, start + n)
    ]


def test_import_connects_stores_encrypted_and_spreads_first_syncs(org, other_org, make_connection, fake_clock, broker):
    make_connection(other_org, kind=KIND, external_account_id="90001", credentials={"access_token": "theirs"})
    listed = rows(5) + [{"store_id": "abc", "access_token": "x"}, {"store_id": "90009"}, rows(1)[0]]
    report = onboarding.stores_import(organization=org, rows=listed, first_syncs_per_minute=2)
    assert report.created == 4 and report.reconnected == 0
    assert sorted(r[1] for r in report.refused) == sorted(
        ["no numeric store_id", "no access_token", "listed twice", "connected to another organization"]
    )
    conns = {c.external_account_id: c for c in Connection.objects.filter(organization=org, kind=KIND)}
    assert set(conns) == {"90000", "90002", "90003", "90004"}
    conn = conns["90003"]
    assert conn.credentials == {"access_token": "tok-3-abcdefgh"}
    assert "tok-3" not in conn.credentials_encrypted and conn.config["scope"] == "read_products"
    # First syncs: none at once, one every 30 s (2 a minute), enqueued later by the scheduler tick.
    assert not SyncQueue.objects.exists() and not OrmQ.objects.exists()
    due = sorted(
        RunSchedule.objects.filter(connection__in=conns.values(), resource="").values_list("next_sync_at", flat=True)
    )
    now = fake_clock.now()
    assert due == [now + dt.timedelta(seconds=30 * i) for i in range(4)]
    assert Schedule.objects.filter(name=f"{KIND}:tick").exists()
    assert SyncActivity.objects.filter(event="tiendanube.connected", connection__in=conns.values()).count() == 4
    assert scheduler.tick(KIND).enqueued == 1  # only the first is due now
    fake_clock.advance(60)
    assert scheduler.tick(KIND).enqueued == 2


def test_reimport_reconnects_a_store_that_needed_it(org, fake_clock):
    onboarding.stores_import(organization=org, rows=rows(2))
    conn = Connection.objects.get(external_account_id="90000")
    runpolicy.connection_mark_needs_reauth(conn, reason="401")
    report = onboarding.stores_import(organization=org, rows=[{"store_id": "90000", "access_token": "fresh-token-1"}])
    assert report.reconnected == 1 and report.created == 0
    conn.refresh_from_db()
    sched = RunSchedule.objects.get(connection=conn, resource="")
    assert not conn.needs_reauth and conn.credentials["access_token"] == "fresh-token-1"
    assert sched.state == ScheduleState.ACTIVE and sched.next_sync_at == fake_clock.now()


def test_import_queries_do_not_grow_with_the_list(org, fake_clock):
    def count(listed):
        with CaptureQueriesContext(db_connection) as ctx:
            report = onboarding.stores_import(organization=org, rows=listed)
        return report.created, len(ctx.captured_queries)

    onboarding.stores_import(organization=org, rows=[])  # registers the kind's tick once
    small = count(rows(5))
    large = count(rows(60, start=1000))  # within one INSERT batch on SQLite too (999 parameters)
    assert small[0] == 5 and large[0] == 60 and small[1] == large[1]


def test_import_command_reads_csv_and_json_and_never_prints_tokens(org, tmp_path):
    csv_file = tmp_path / "stores.csv"
    csv_file.write_text("store_id,access_token,scope\n91000,tok-csv-secret-1,read\n91001,tok-csv-secret-2,read\n")
    json_file = tmp_path / "stores.json"
    json_file.write_text(json.dumps([{"store_id": "91002", "access_token": "tok-json-secret"}, {"store_id": "x"}]))
    out = io.StringIO()
    call_command("tiendanube_import", str(csv_file), "--organization", str(org.pk), stdout=out)
    call_command("tiendanube_import", str(json_file), "--organization", str(org.pk), stdout=out)
    text = out.getvalue()
    assert "2 stores connected (2 new, 0 reconnected), 0 refused" in text
    assert "1 stores connected (1 new, 0 reconnected), 1 refused" in text
    assert "tok-" not in text
    assert Connection.objects.filter(kind=KIND, organization=org).count() == 3
    assert RunSlot.objects.filter(connection__isnull=False).count() == 0
