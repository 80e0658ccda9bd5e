"""Review of issue 15: WooCommerce's backoff from the policy machinery, end to end (a real failing run through
the engine, not a synthetic signal): the schedule backs off and a 401 marks needs-reauth at once."""

import pytest

from sync import runpolicy, services
from sync.models import RunSchedule, ScheduleState
from sync.registry import get_connector
from sync.tasks import run_queue

pytestmark = pytest.mark.django_db


def test_a_failing_scheduled_run_backs_off_and_a_401_needs_reauth(woo, fake_clock, django_capture_on_commit_callbacks):
    sandbox, conn = woo(size=5)
    conn.config = {"sync_every_minutes": 15}
    conn.save()
    runpolicy.schedules_register()
    sandbox.faults.error_pages = {0: 500, 1: 500}  # every list request of the first page fails
    started = services.sync_start(connection=conn, resource="orders", origin="schedule", enqueue=False)
    with django_capture_on_commit_callbacks(execute=True):  # sync_run_finished is sent after the commit
        assert run_queue(started.queue.pk) == "failed"
    sched = RunSchedule.objects.get(connection=conn, resource="orders")
    assert sched.state == ScheduleState.BACKOFF and sched.failures_in_row == 1
    assert sched.next_sync_at == fake_clock.now() + get_connector("woocommerce").policy.backoff[0]

    sandbox.faults.error_pages = {}
    conn.credentials = {**conn.credentials, "consumer_secret": "cs_wrong"}
    conn.save()
    fake_clock.advance(600)
    started = services.sync_start(connection=conn, resource="orders", origin="schedule", enqueue=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_queue(started.queue.pk) == "failed"
    conn.refresh_from_db()
    assert conn.needs_reauth
    assert RunSchedule.objects.get(connection=conn, resource="orders").state == ScheduleState.NEEDS_REAUTH
