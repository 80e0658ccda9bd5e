import datetime as dt

import pytest
from django.test import Client

from connectors.tiendanube import health, stores
from connectors.tiendanube.signals import store_synced
from sync import connection_runs, runpolicy
from sync.connection_runs import connection_sync
from sync.models import RunSchedule, RunSlot, SyncActivity

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_stores(tn_sandbox, store_conn, fake_clock):
    sb = tn_sandbox(stores=2, records=2)
    stale, fresh = store_conn(sb, "1001"), store_conn(sb, "1002")
    now = fake_clock.now()
    RunSchedule.objects.create(
        connection=stale, organization=stale.organization, tier="high", last_success_at=now - dt.timedelta(minutes=20)
    )
    RunSchedule.objects.create(
        connection=fresh, organization=fresh.organization, tier="high", last_success_at=now - dt.timedelta(minutes=1)
    )
    return sb, stale, fresh


@pytest.fixture
def enqueued(monkeypatch):
    calls = []
    monkeypatch.setattr(connection_runs, "_enqueue", lambda conn_id, origin: calls.append((conn_id, origin)))
    return calls


@pytest.fixture
def broker_tasks(monkeypatch):
    """The tasks put on the ORM broker (for real: tests run django-q2 inline otherwise), as sorted args."""
    from django_q.conf import Conf
    from django_q.models import OrmQ
    from django_q.signing import SignedPackage

    monkeypatch.setattr(Conf, "SYNC", False)

    def tasks():
        return sorted(tuple(SignedPackage.loads(q.payload)["args"]) for q in OrmQ.objects.all())

    return tasks


def test_login_enqueues_only_stale_stores_once(two_stores, staff, broker_tasks, fake_clock):
    sb, stale, fresh = two_stores
    calls_before = sb.api_calls
    assert Client().login(username="alice", password="pw-alice")
    assert broker_tasks() == [(stale.pk, "login")]
    assert sb.api_calls == calls_before  # enqueue only: no upstream call during the login
    assert (
        SyncActivity.objects.filter(event="tiendanube.login_sync", connection=stale, data__origin="login").count() == 1
    )
    assert RunSchedule.objects.get(connection=stale, resource="").queued_at == fake_clock.now()
    fake_clock.advance(5)
    assert Client().login(username="alice", password="pw-alice")
    assert broker_tasks() == [(stale.pk, "login")]  # already queued: nothing new


def test_login_skips_a_store_that_is_running_paused_or_needing_a_reconnect(
    two_stores, staff, broker_tasks, org, make_connection, fake_clock
):
    _, stale, _ = two_stores
    runpolicy.slot_acquire(stale)
    old = fake_clock.now() - dt.timedelta(days=1)
    paused = make_connection(org, kind="tiendanube", external_account_id="1003", name="paused")
    reauth = make_connection(org, kind="tiendanube", external_account_id="1004", name="reauth", needs_reauth=True)
    RunSchedule.objects.create(connection=paused, organization=org, tier="high", last_success_at=old, state="paused")
    RunSchedule.objects.create(connection=reauth, organization=org, tier="high", last_success_at=old)
    Client().login(username="alice", password="pw-alice")
    assert broker_tasks() == []


def test_login_enqueues_stalest_first_within_the_tick_room(
    staff, broker_tasks, org, make_connection, fake_clock, settings
):
    now = fake_clock.now()
    conns = []
    # Tiers: "high" is stale after 5 min, "low" after 6 h; s4 never succeeded.
    for i, (tier, ago) in enumerate([("high", 10), ("low", 7 * 60), ("high", 20), ("low", 60), ("high", None)]):
        conn = make_connection(org, kind="tiendanube", external_account_id=str(1100 + i), name=f"s{i}")
        last = None if ago is None else now - dt.timedelta(minutes=ago)
        RunSchedule.objects.create(connection=conn, organization=org, tier=tier, last_success_at=last)
        conns.append(conn)
    fresh = make_connection(org, kind="tiendanube", external_account_id="1199", name="fresh")
    RunSchedule.objects.create(connection=fresh, organization=org, tier="high", last_success_at=now)
    # Stale: s4 (never), s1 (7 h > 6 h), s2 (20 min), s0 (10 min); s3 (low, 1 h) and "fresh" are not.
    settings.SYNC_TICK_MAX_ENQUEUE = 3  # room for three: the stalest three
    assert sorted(stores.login_sync(user=staff)) == sorted([conns[4].pk, conns[1].pk, conns[2].pk])
    settings.SYNC_TICK_MAX_ENQUEUE = 10
    assert stores.login_sync(user=staff) == [conns[0].pk]
    assert broker_tasks() == sorted((conns[i].pk, "login") for i in (4, 1, 2, 0))


def test_login_queries_do_not_grow_with_the_stale_stores(staff, broker_tasks, org, make_connection, fake_clock):
    from django.db import connection as db_connection
    from django.test.utils import CaptureQueriesContext

    def stale_stores(n, start):
        for i in range(start, start + n):
            conn = make_connection(org, kind="tiendanube", external_account_id=str(1200 + i), name=f"s{i}")
            RunSchedule.objects.create(connection=conn, organization=org, tier="high", last_success_at=None)

    def measure():
        with CaptureQueriesContext(db_connection) as ctx:
            n = len(stores.login_sync(user=staff))
        RunSchedule.objects.update(queued_at=None)
        return n, len(ctx.captured_queries)

    stale_stores(2, 0)
    small = measure()
    stale_stores(40, 100)
    large = measure()
    assert small[0] == 2 and large[0] == 42 and small[1] == large[1]


def test_login_sync_runs_with_origin_login(two_stores, staff, django_capture_on_commit_callbacks):
    _, stale, _ = two_stores
    with django_capture_on_commit_callbacks(execute=True):
        Client().login(username="alice", password="pw-alice")  # django-q2 runs inline in tests
    from sync.models import SyncQueue

    assert set(SyncQueue.objects.filter(connection=stale).values_list("origin", flat=True)) == {"login"}
    assert RunSchedule.objects.get(connection=stale, resource="").queued_at is None


def test_post_sync_hook_fires_after_successful_store_sync(two_stores):
    _, stale, _ = two_stores
    seen = []

    def receiver(sender, connection, **kw):
        seen.append(connection.pk)

    store_synced.connect(receiver)
    try:
        connection_sync(connection_id=stale.pk)
    finally:
        store_synced.disconnect(receiver)
    assert seen == [stale.pk]


def api(user):
    c = Client()
    c.force_login(user)
    return c


def test_scheduler_status_shape_and_scoping(two_stores, staff, other_staff, enqueued):
    _, stale, fresh = two_stores
    body = api(staff).get("/api/tiendanube/scheduler/status/").json()
    assert {"running", "total", "active", "pending", "failed", "stores"} <= set(body)
    assert body["total"] == 2 and {s["id"] for s in body["stores"]} == {stale.pk, fresh.pk}
    assert {"next_sync_at", "last_sync_at"} <= set(body["stores"][0])
    other = api(other_staff).get("/api/tiendanube/scheduler/status/").json()
    assert other["total"] == 0 and other["stores"] == []


def test_sync_one_store_is_org_scoped(two_stores, staff, other_staff, enqueued, django_capture_on_commit_callbacks):
    _, _, store = two_stores  # the fresh one: logging in (force_login) does not enqueue it
    assert api(other_staff).post(f"/api/tiendanube/stores/{store.pk}/sync/").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        r = api(staff).post(f"/api/tiendanube/stores/{store.pk}/sync/")
    assert r.status_code == 202 and r.json()["status"] == "enqueued"
    with django_capture_on_commit_callbacks(execute=True):
        again = api(staff).post(f"/api/tiendanube/stores/{store.pk}/sync/")
    assert again.json()["status"] != "enqueued"
    assert [c for c in enqueued if c[1] == "api"] == [(store.pk, "api")]


def test_store_sync_endpoints_are_throttled(two_stores, staff, enqueued, settings):
    """Both manual sync endpoints count against the "sync-trigger" scope like every other trigger."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"sync-trigger": "2/min"}}
    _, stale, _ = two_stores
    client = api(staff)
    assert client.post(f"/api/tiendanube/stores/{stale.pk}/sync/").status_code == 202
    assert client.post("/api/tiendanube/stores/sync/").status_code == 202
    for url in (f"/api/tiendanube/stores/{stale.pk}/sync/", "/api/tiendanube/stores/sync/"):
        r = client.post(url)
        assert r.status_code == 429 and r.json()["error"]["code"] == "throttled" and "Retry-After" in r


def test_live_checks_are_throttled(two_stores, staff, settings):
    """Token diagnosis and a fresh health check call Tiendanube: they count against "sync-trigger" too;
    the cached health report does not."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"sync-trigger": "2/min"}}
    _, stale, _ = two_stores
    client = api(staff)
    assert client.get(f"/api/tiendanube/stores/{stale.pk}/token/").status_code == 200
    assert client.get("/api/tiendanube/health/?fresh=1").status_code in (200, 503)  # 503: a check failed
    assert client.get(f"/api/tiendanube/stores/{stale.pk}/token/").status_code == 429
    assert client.get("/api/tiendanube/health/?fresh=1").status_code == 429
    assert client.get("/api/tiendanube/health/").status_code in (200, 503)  # the stored report: not throttled


def test_sync_all_and_initialize(two_stores, staff, enqueued, django_capture_on_commit_callbacks):
    _, stale, fresh = two_stores
    with django_capture_on_commit_callbacks(execute=True):
        r = api(staff).post("/api/tiendanube/stores/sync/")
    assert r.status_code == 202 and set(r.json()["stores"]) == {str(stale.pk), str(fresh.pk)}
    r = api(staff).post("/api/tiendanube/scheduler/initialize/")
    assert r.json() == {"initialized": 2}
    from django_q.models import Schedule

    # One tick per kind (sync.scheduler) serves every store: no Schedule per store; each has its RunSchedule.
    assert Schedule.objects.filter(name__in=[f"tiendanube:{stale.pk}", f"tiendanube:{fresh.pk}"]).count() == 0
    assert Schedule.objects.filter(name="tiendanube:tick").count() == 1
    assert RunSchedule.objects.filter(connection__in=[stale, fresh], resource="").count() == 2


def test_health_and_token_diagnosis(two_stores, staff, other_staff):
    sb, stale, fresh = two_stores
    sb.uninstall("1002")
    diag = api(staff).get(f"/api/tiendanube/stores/{stale.pk}/token/").json()
    assert diag["valid"] is True and sb.stores["1001"].token not in str(diag)
    assert api(other_staff).get(f"/api/tiendanube/stores/{stale.pk}/token/").status_code == 404
    r = api(staff).get("/api/tiendanube/health/?fresh=1")
    body = r.json()
    assert body["database"]["ok"] and body["settings"]["ok"]
    by_id = {s["connection"]: s for s in body["stores"]}
    assert by_id[stale.pk]["valid"] and not by_id[fresh.pk]["valid"] and by_id[fresh.pk]["status"] == 401
    assert r.status_code == 503 and body["ok"] is False
    fresh.refresh_from_db()
    assert fresh.needs_reauth
    assert api(other_staff).get("/api/tiendanube/health/").json()["stores"] == []


def test_health_reports_missing_settings(tn_settings, staff):
    tn_settings.TIENDANUBE_CLIENT_SECRET = ""
    body = health.health_check(connections=[])
    assert body["settings"] == {"ok": False, "missing": ["TIENDANUBE_CLIENT_SECRET"]}


def test_non_staff_gets_403(two_stores, django_user_model):
    u = django_user_model.objects.create_user("eve", password="x")
    assert api(u).get("/api/tiendanube/scheduler/status/").status_code == 403
    assert not RunSlot.objects.exists()


def test_admin_lists_stores_with_reconnect_button(two_stores, staff, other_staff):
    _, stale, fresh = two_stores
    stores.store_mark_needs_reauth(stale, reason="the token was rejected (401)")
    page = api(staff).get("/admin/tiendanube/storeschedule/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("Reconnect</a>") == 1 and "Connect a Tiendanube store" in html
    assert "store 1001" in api(staff).get("/admin/tiendanube/storeschedule/").content.decode()
    assert "store 1001" not in api(other_staff).get("/admin/tiendanube/storeschedule/").content.decode()
    from django_q.models import Schedule

    assert Schedule.objects.filter(name="tiendanube:health", minutes=30).exists()
