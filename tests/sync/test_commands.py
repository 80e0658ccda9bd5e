"""The sync_* management commands: thin wrappers over services, tested through call_command."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django_q.models import Schedule

from customers.models import Customer
from sync import services
from sync.models import LineState, QueueState, SyncQueue, SyncQueueLine


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_sync_run_prints_progress_and_syncs(fake_conn, fake_kind):
    fake_kind.__init__(25)
    fake_conn.config = {"fetch_group_records": 1}  # store page by page (10 records), so progress comes per page
    fake_conn.save(update_fields=["config"])
    out = run("sync_run", str(fake_conn.pk), "customers", "--batch-size", "10")
    q = SyncQueue.objects.get()
    assert q.state == QueueState.DONE and q.origin == "manual"
    assert Customer.objects.filter(connection=fake_conn).count() == 25
    lines = out.splitlines()
    assert lines[0] == f"started queue #{q.pk}: {fake_conn.name} / customers"
    assert any("10/" in ln for ln in lines) and any("20/" in ln for ln in lines)  # one line per batch
    assert lines[-1].startswith(f"queue #{q.pk} customers [done] 25/25 done")


def test_sync_run_idempotency_key_and_full_scan(fake_conn, fake_kind):
    fake_kind.__init__(3)
    run("sync_run", str(fake_conn.pk), "customers", "--idempotency-key", "deploy-1")
    out = run("sync_run", str(fake_conn.pk), "customers", "--idempotency-key", "deploy-1")
    assert out.startswith("resuming queue #") and SyncQueue.objects.count() == 1
    with pytest.raises(CommandError, match="different parameters"):
        run("sync_run", str(fake_conn.pk), "customers", "--idempotency-key", "deploy-1", "--full-scan")
    run("sync_run", str(fake_conn.pk), "customers", "--full-scan")
    assert SyncQueue.objects.latest("id").full_scan and SyncQueue.objects.latest("id").total_count == 3


def test_sync_run_fails_loudly(fake_conn, fake_kind):
    fake_kind.__init__(3)
    fake_kind.records[0]["email"] = ""
    with pytest.raises(CommandError, match="ended partial"):
        run("sync_run", str(fake_conn.pk), "customers")
    with pytest.raises(CommandError, match="does not exist"):
        run("sync_run", "999999", "customers")
    with pytest.raises(CommandError, match="no resource"):
        run("sync_run", str(fake_conn.pk), "nope")


def test_sync_status(fake_conn, fake_kind):
    assert "no sync has run yet" in run("sync_status")
    fake_kind.__init__(4)
    run("sync_run", str(fake_conn.pk), "customers")
    services.sync_start(connection=fake_conn, resource="customers", enqueue=False)
    out = run("sync_status", "--connection", str(fake_conn.pk))
    assert f"#{fake_conn.pk} {fake_conn.name} / customers: success (cursor 4, synced 4" in out
    assert "active queues:" in out and "[draft]" in out


def test_sync_retry_force_done_cancel(fake_conn, fake_kind):
    fake_kind.__init__(3)
    fake_kind.flaky["2"] = 3
    with pytest.raises(CommandError, match=r"queue #\d+ ended partial"):  # not just any CommandError
        run("sync_run", str(fake_conn.pk), "customers")
    q = SyncQueue.objects.get()
    out = run("sync_retry", str(q.pk))  # enqueued; django-q2 runs it inline in tests
    assert "[done] 3/3 done" in out
    with pytest.raises(CommandError, match="no failed lines"):
        run("sync_retry", str(q.pk))

    fake_kind.records.append(fake_kind.make(4, email=""))
    with pytest.raises(CommandError, match=r"queue #\d+ ended failed: .*email is required"):
        run("sync_run", str(fake_conn.pk), "customers")
    q2 = SyncQueue.objects.latest("id")
    assert "[done]" in run("sync_force_done", str(q2.pk))
    assert SyncQueueLine.objects.get(queue=q2, external_id="4").state == LineState.CANCELLED

    q3 = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    assert "[cancelled]" in run("sync_cancel", str(q3.pk))
    with pytest.raises(CommandError, match="already cancelled"):
        run("sync_cancel", str(q3.pk))
    with pytest.raises(CommandError, match="does not exist"):
        run("sync_cancel", "999999")


def test_sync_reap(fake_conn, fake_kind, fake_clock, settings):
    from sync import engine

    fake_kind.__init__(2)
    q = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    runner = engine.QueueRunner(q)
    runner.claim(10)  # nothing fetched yet: no lines to hold
    out = StringIO()
    with pytest.raises(CommandError) as nothing:  # exit 3: nothing to do
        call_command("sync_reap", stdout=out)
    assert nothing.value.returncode == 3 and "0 line(s) back to draft" in out.getvalue()
    fake_clock.advance(settings.SYNC_LEASE_SECONDS + 1)
    out = run("sync_reap", "--purge")
    assert "1 queue(s) resumed" in out and "purged 0 finished queue(s)" in out
    q.refresh_from_db()
    assert q.state == QueueState.DONE  # resumed inline


def test_sync_schedules_is_idempotent(db):
    run("sync_schedules")
    out = run("sync_schedules")
    assert "synchub:reaper: sync.tasks.reap" in out and "synchub:purge: sync.tasks.purge" in out
    names = list(Schedule.objects.values_list("name", flat=True))
    assert len(names) == len(set(names)) and {"synchub:reaper", "synchub:purge"} <= set(names)
    reaper = Schedule.objects.get(name="synchub:reaper")
    assert reaper.schedule_type == Schedule.MINUTES and reaper.minutes == 1 and reaper.repeats == -1
