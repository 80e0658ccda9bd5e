"""The engine executes what connectors declare (sync.policy -> sync.runpolicy): backoff and needs-reauth
for WooCommerce and Lightspeed, failure streaks, the parallel cap per kind, jitter, idempotent schedules."""

import dataclasses
import datetime as dt
import io

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from sync import runpolicy
from sync.models import Lane, QueueState, RunSchedule, RunSlot, ScheduleState, SyncQueue
from sync.policy_selectors import failure_streak, failure_streaks
from sync.registry import get_connector
from sync.signals import sync_run_finished

pytestmark = pytest.mark.django_db

MIN = dt.timedelta(minutes=1)


def finish(conn, resource, *, ok, error="HTTP 500 from upstream"):
    """A run of ``resource`` reaching its final state, announced the way queue_finalize announces it."""
    queue = SyncQueue.objects.create(
        organization=conn.organization,
        connection=conn,
        resource=resource,
        lane=Lane.RUN,
        state=QueueState.DONE if ok else QueueState.FAILED,
        is_active=False,
        last_error="" if ok else error,
    )
    sync_run_finished.send(sender=SyncQueue, queue=queue, succeeded=ok)
    return queue


@pytest.fixture
def timed(org, make_connection, settings, monkeypatch):
    """One connection per kind with timed syncs: WooCommerce by its config, Lightspeed by its env."""
    monkeypatch.setenv("LIGHTSPEED_SYNC_MINUTES", "60")

    def make(kind):
        if kind == "woocommerce":
            return make_connection(org, config={"sync_every_minutes": 15})
        return make_connection(
            org, kind="lightspeed", external_account_id="shop", config={"domain_prefix": "shop", "auth": "token"}
        )

    return make


@pytest.mark.parametrize(
    ("kind", "resource"), [("woocommerce", "orders"), ("lightspeed", "customers")], ids=["woocommerce", "lightspeed"]
)
def test_backoff_then_needs_reauth_from_the_declaration(timed, fake_clock, kind, resource):
    """Outages back off along the declared steps and never ask for new credentials; an auth failure (the
    engine marks needs-reauth on a 401) pauses every schedule of the connection until it is reconnected."""
    conn = timed(kind)
    runpolicy.schedules_register()
    policy = get_connector(kind).policy
    assert policy.backoff and policy.reauth_after is None
    name = f"{kind}:{conn.pk}:{resource}"
    for n in range(1, 8):
        finish(conn, resource, ok=False)
        sched = RunSchedule.objects.get(connection=conn, resource=resource)
        wait = policy.backoff[min(n, len(policy.backoff)) - 1]
        assert sched.failures_in_row == n and sched.state == ScheduleState.BACKOFF
        assert sched.next_sync_at == fake_clock.now() + wait
        assert Schedule.objects.get(name=name).next_run == sched.next_sync_at
        fake_clock.advance(wait.total_seconds())
    conn.refresh_from_db()
    assert not conn.needs_reauth, "seven outages in a row are not a credentials problem"
    type(conn).objects.filter(pk=conn.pk).update(needs_reauth=True)  # what the engine does on a 401
    finish(conn, resource, ok=False, error="HTTP 401 from GET /orders: woocommerce_rest_cannot_view")
    conn.refresh_from_db()
    sched = RunSchedule.objects.get(connection=conn, resource=resource)
    assert conn.needs_reauth and sched.state == ScheduleState.NEEDS_REAUTH
    # Every schedule of the connection pauses, not only the failing resource's.
    assert set(Schedule.objects.filter(name__startswith=f"{kind}:{conn.pk}:").values_list("repeats", flat=True)) == {0}
    # A reconnect (needs_reauth cleared) brings the schedules back at the next registration.
    type(conn).objects.filter(pk=conn.pk).update(needs_reauth=False)
    runpolicy.schedules_register()
    assert Schedule.objects.get(name=name).repeats == -1
    assert RunSchedule.objects.get(connection=conn, resource=resource).failures_in_row == 0


def test_success_resets_the_streak_and_the_backoff(timed, fake_clock):
    conn = timed("woocommerce")
    runpolicy.schedules_register()
    finish(conn, "orders", ok=False)
    finish(conn, "orders", ok=False)
    assert failure_streak(conn, "orders") == 2
    finish(conn, "orders", ok=True)
    sched = RunSchedule.objects.get(connection=conn, resource="orders")
    assert sched.failures_in_row == 0 and sched.state == ScheduleState.ACTIVE and sched.last_success_at is not None
    assert not conn.needs_reauth


def test_failure_streak_is_readable_for_alerting(timed, fake_clock):
    conn = timed("woocommerce")
    for _ in range(3):
        finish(conn, "products", ok=False)
    finish(conn, "orders", ok=False)
    rows = list(failure_streaks(kind="woocommerce"))
    assert [(r.connection_id, r.resource, r.failures_in_row) for r in rows] == [(conn.pk, "products", 3)]
    assert [r.resource for r in failure_streaks(min_streak=1)] == ["products", "orders"]


def test_a_cancelled_run_moves_no_streak(timed):
    conn = timed("woocommerce")
    queue = finish(conn, "orders", ok=False)
    SyncQueue.objects.filter(pk=queue.pk).update(state=QueueState.CANCELLED)
    queue.refresh_from_db()
    sync_run_finished.send(sender=SyncQueue, queue=queue, succeeded=False)
    assert failure_streak(conn, "orders") == 1


def test_parallel_cap_is_per_kind_and_never_the_same_connection_twice(org, make_connection, settings, monkeypatch):
    settings.TIENDANUBE_MAX_PARALLEL_SYNCS = 1
    woo = get_connector("woocommerce")
    monkeypatch.setattr(woo, "policy", dataclasses.replace(woo.policy, max_parallel=2))
    stores = [make_connection(org, kind="tiendanube", external_account_id=str(100 + i)) for i in range(2)]
    shops = [make_connection(org, name=f"shop {i}") for i in range(3)]
    assert runpolicy.slot_acquire(stores[0]) is not None
    assert runpolicy.slot_acquire(stores[1]) is None  # Tiendanube's one slot is taken...
    held = [runpolicy.slot_acquire(s) for s in shops[:2]]  # ...WooCommerce's two are its own
    assert all(held) and {s.kind for s in held} == {"woocommerce"}
    assert runpolicy.slot_acquire(shops[2]) is None
    with pytest.raises(runpolicy.AlreadyRunning):
        runpolicy.slot_acquire(shops[0])
    runpolicy.slot_release(held[0])
    assert runpolicy.slot_acquire(shops[2]).kind == "woocommerce"
    assert RunSlot.objects.filter(connection__isnull=False).count() == 3


def test_jitter_spreads_first_runs_within_the_interval(org, make_connection, fake_clock):
    conns = [make_connection(org, name=f"shop {i}", config={"sync_every_minutes": 60}) for i in range(40)]
    runpolicy.schedules_register()
    runs = list(
        Schedule.objects.filter(name__in=[f"woocommerce:{c.pk}:orders" for c in conns]).values_list(
            "next_run", flat=True
        )
    )
    now = fake_clock.now()
    assert len(runs) == 40 and all(now <= r < now + 60 * MIN for r in runs)
    assert len({r.replace(second=0) for r in runs}) >= 20  # spread over the hour, not all due at once
    assert runpolicy.jitter("woocommerce:1:orders", 60 * MIN) == runpolicy.jitter("woocommerce:1:orders", 60 * MIN)


def test_registration_is_idempotent_and_reports_what_changed(org, make_connection, fake_clock):
    conn = make_connection(org, config={"sync_every_minutes": 15})
    first = runpolicy.schedules_register()
    assert first.changes[f"woocommerce:{conn.pk}:orders"] == "created"
    before = dict(Schedule.objects.values_list("name", "next_run"))
    fake_clock.advance(600)
    again = runpolicy.schedules_register()
    assert again.count("created") == again.count("updated") == again.count("deleted") == 0
    assert dict(Schedule.objects.values_list("name", "next_run")) == before  # nothing moved
    names = list(Schedule.objects.values_list("name", flat=True))
    assert len(names) == len(set(names))
    # A changed declaration is an update; a connection that stops timed syncs loses its schedules.
    conn.config = {"sync_every_minutes": 30}
    conn.save()
    assert runpolicy.schedules_register().changes[f"woocommerce:{conn.pk}:orders"] == "updated"
    assert Schedule.objects.get(name=f"woocommerce:{conn.pk}:orders").minutes == 30
    conn.config = {}
    conn.save()
    assert runpolicy.schedules_register().changes[f"woocommerce:{conn.pk}:orders"] == "deleted"
    out = io.StringIO()
    call_command("sync_schedules", stdout=out)
    assert f"0 created, 0 updated, {Schedule.objects.count()} unchanged, 0 removed" in out.getvalue()


def test_after_run_hook_fires_once_per_unit(timed, monkeypatch):
    seen = []
    woo = get_connector("woocommerce")
    monkeypatch.setattr(woo, "policy", dataclasses.replace(woo.policy, after_run="tests.sync.test_run_policy.hook"))
    monkeypatch.setattr("tests.sync.test_run_policy.SEEN", seen)
    conn = timed("woocommerce")
    finish(conn, "orders", ok=True)
    finish(conn, "orders", ok=False)
    assert seen == [(conn.pk, True, 1), (conn.pk, False, 1)]


SEEN: list = []


def hook(*, connection, succeeded, queues):
    SEEN.append((connection.pk, succeeded, len(queues)))
