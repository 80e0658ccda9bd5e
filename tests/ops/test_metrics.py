"""/metrics over HTTP: the token gate, the figures per connection and resource, and a query count that
does not grow with the fleet."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection as db_connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from prometheus_client.parser import text_string_to_metric_families

from connectors.sandbox.server import serve
from sync.models import Lane, QueueState, StatusState, SyncQueue, SyncStatus

TOKEN = "metrics-token-0123456789"


@pytest.fixture
def metrics_on(settings, db):
    settings.METRICS_TOKEN = TOKEN
    return settings


def scrape(token: str | None = TOKEN):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return Client().get("/metrics", **headers)


def samples(response) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def labels(conn, resource=None) -> tuple:
    base = {"connection": str(conn.pk), "kind": conn.kind, "organization": conn.organization.slug}
    if resource:
        base["resource"] = resource
    return tuple(sorted(base.items()))


def test_metrics_are_off_without_a_configured_token(db, settings):
    settings.METRICS_TOKEN = ""
    assert scrape().status_code == 404


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer", f"bearer {TOKEN[:-1]}"]
)
def test_metrics_refuse_a_missing_or_wrong_token(metrics_on, header):
    headers = {"HTTP_AUTHORIZATION": header} if header else {}
    response = Client().get("/metrics", **headers)
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Bearer"
    assert b"synchub_" not in response.content


def test_metrics_only_answer_get(metrics_on):
    assert Client().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_metrics_per_connection_and_resource(metrics_on, org, make_connection, fake_clock):
    now = fake_clock.now()
    good = make_connection(org, kind="woocommerce", name="good")
    bad = make_connection(org, kind="tiendanube", name="bad")
    SyncStatus.objects.create(
        organization=org,
        connection=good,
        resource="customers",
        state=StatusState.SUCCESS,
        last_success_at=now - dt.timedelta(minutes=10),
        started_at=now - dt.timedelta(minutes=10, seconds=42),
        finished_at=now - dt.timedelta(minutes=10),
        records_synced=797,
        records_failed=0,
    )
    SyncStatus.objects.create(
        organization=org,
        connection=bad,
        resource="orders",
        state=StatusState.FAILED,
        records_synced=0,
        records_failed=5,
    )
    response = scrape()
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    got = samples(response)
    g = labels(good, "customers")
    assert got[("synchub_sync_last_success_timestamp_seconds", g)] == (now - dt.timedelta(minutes=10)).timestamp()
    assert got[("synchub_sync_lag_seconds", g)] == 600.0
    assert got[("synchub_sync_last_run_duration_seconds", g)] == 42.0
    assert got[("synchub_sync_last_run_records_synced", g)] == 797
    assert got[("synchub_sync_last_run_failed", g)] == 0
    b = labels(bad, "orders")
    assert got[("synchub_sync_last_run_failed", b)] == 1
    assert got[("synchub_sync_last_run_failed_lines", b)] == 5
    assert ("synchub_sync_lag_seconds", b) not in got, "never succeeded: no lag figure rather than a made-up one"
    fake_clock.advance(60)
    assert samples(scrape())[("synchub_sync_lag_seconds", g)] == 660.0


def test_run_duration_histogram_from_finished_runs(metrics_on, org, make_connection, fake_clock):
    now = fake_clock.now()
    conn = make_connection(org, kind="woocommerce")

    def run(seconds, state=QueueState.DONE, ago=dt.timedelta(hours=1), lane=Lane.RUN):
        q = SyncQueue.objects.create(
            organization=org, connection=conn, resource="customers", state=state, is_active=False, lane=lane
        )
        SyncQueue.objects.filter(pk=q.pk).update(
            started_at=now - ago - dt.timedelta(seconds=seconds), finished_at=now - ago
        )

    run(2)
    run(40)
    run(4000, state=QueueState.FAILED)
    run(3, ago=dt.timedelta(hours=30))  # outside the 24 h window
    run(1, lane=Lane.WEBHOOK)  # webhook lanes are not runs
    got = samples(scrape())
    kr = (("kind", "woocommerce"), ("resource", "customers"))
    assert got[("synchub_sync_run_duration_seconds_bucket", (*kr[:1], ("le", "1.0"), *kr[1:]))] == 0
    assert got[("synchub_sync_run_duration_seconds_bucket", (*kr[:1], ("le", "5.0"), *kr[1:]))] == 1
    assert got[("synchub_sync_run_duration_seconds_bucket", (*kr[:1], ("le", "60.0"), *kr[1:]))] == 2
    assert got[("synchub_sync_run_duration_seconds_bucket", (*kr[:1], ("le", "3600.0"), *kr[1:]))] == 2
    assert got[("synchub_sync_run_duration_seconds_bucket", (*kr[:1], ("le", "+Inf"), *kr[1:]))] == 3
    assert got[("synchub_sync_run_duration_seconds_gcount", kr)] == 3
    assert got[("synchub_sync_run_duration_seconds_gsum", kr)] == 4042.0
    assert got[("synchub_sync_runs_finished_24h", (*kr, ("state", "done")))] == 2
    assert got[("synchub_sync_runs_finished_24h", (*kr, ("state", "failed")))] == 1


def _too_many_requests(environ, start_response):
    start_response("429 Too Many Requests", [("Content-Type", "application/json"), ("Retry-After", "0")])
    return [b'{"message": "slow down"}']


def test_429s_are_counted_per_connection_where_the_client_classifies_them(
    metrics_on, org, make_connection, django_capture_on_commit_callbacks
):
    from connectors.base import Client as UpstreamClient
    from connectors.base import RateLimited

    with serve(_too_many_requests) as base:
        conn = make_connection(org, kind="woocommerce", base_url=base)
        client = UpstreamClient(conn)
        client.max_tries = 2
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(RateLimited):
            client.request("GET", "customers")
        client.close()
    got = samples(scrape())
    assert got[("synchub_upstream_rate_limited_total", labels(conn))] == 2


def test_broker_depth_and_worker_heartbeat(metrics_on, monkeypatch, fake_clock):
    from django_q.conf import Conf
    from django_q.tasks import async_task

    from ops.models import WorkerHeartbeat

    monkeypatch.setattr(Conf, "SYNC", False)
    async_task("math.floor", 1.5)
    async_task("math.floor", 2.5)
    WorkerHeartbeat.objects.create(worker="h:1", seen_at=fake_clock.now() - dt.timedelta(seconds=42))
    got = samples(scrape())
    assert got[("synchub_broker_queue_depth", (("broker", "orm"),))] == 2
    assert got[("synchub_worker_heartbeat_age_seconds", ())] == 42.0
    assert got[("synchub_workers_alive", ())] == 1
    assert all(v == 1 for (name, _), v in got.items() if name == "synchub_metrics_section_ok")


def test_a_failing_section_leaves_the_others(metrics_on, org, make_connection, monkeypatch):
    from ops import selectors

    def down():
        raise ConnectionError("redis down")

    monkeypatch.setattr(selectors, "broker_queue_depth", down)
    conn = make_connection(org)
    SyncStatus.objects.create(organization=org, connection=conn, resource="customers", state=StatusState.IDLE)
    got = samples(scrape())
    assert got[("synchub_metrics_section_ok", (("section", "broker"),))] == 0
    assert got[("synchub_metrics_section_ok", (("section", "statuses"),))] == 1
    assert ("synchub_sync_last_run_failed", labels(conn, "customers")) in got


def test_query_count_does_not_grow_with_the_fleet(metrics_on, org, make_connection, fake_clock):
    from connectors.models import Connection
    from ops.models import RateLimitCount

    def grow(n):
        for _ in range(n):
            conn = make_connection(org, name=f"c{Connection.objects.count()}")
            for resource in ("customers", "orders"):
                SyncStatus.objects.create(
                    organization=org, connection=conn, resource=resource, last_success_at=fake_clock.now()
                )
                q = SyncQueue.objects.create(
                    organization=org, connection=conn, resource=resource, state=QueueState.DONE, is_active=False
                )
                SyncQueue.objects.filter(pk=q.pk).update(started_at=fake_clock.now(), finished_at=fake_clock.now())
            RateLimitCount.objects.create(connection=conn, count=1, last_at=fake_clock.now())

    def queries() -> int:
        with CaptureQueriesContext(db_connection) as ctx:
            assert scrape().status_code == 200
        return len(ctx.captured_queries)

    grow(2)
    small = queries()
    grow(30)
    assert queries() == small
    assert sum(1 for (name, _) in samples(scrape()) if name == "synchub_sync_lag_seconds") == 64
