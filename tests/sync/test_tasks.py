"""django-q2 entry points: ids in, never raise."""

from sync import tasks
from sync.models import QueueState, StatusState, SyncActivity, SyncQueue, SyncStatus


def test_scheduled_sync_runs_and_returns_the_queue_id(fake_conn, fake_kind):
    fake_kind.__init__(3)
    queue_id = tasks.start_scheduled_sync(fake_conn.pk, "customers")
    q = SyncQueue.objects.get(pk=queue_id)
    assert q.origin == "schedule" and q.state == QueueState.DONE


def test_scheduled_sync_of_a_connection_needing_reauth_is_skipped(fake_conn, fake_kind):
    fake_conn.needs_reauth = True
    fake_conn.save()
    assert tasks.start_scheduled_sync(fake_conn.pk, "customers") is None
    assert SyncStatus.objects.get(connection=fake_conn).state == StatusState.SKIPPED
    assert SyncActivity.objects.filter(event="schedule.skipped", connection=fake_conn).exists()
    assert not SyncQueue.objects.exists()


def test_tasks_never_raise(db):
    assert tasks.start_scheduled_sync(999999, "customers") is None
    assert tasks.run_queue(999999) is None
    assert tasks.reap() == {"returned": 0, "failed": 0, "resumed": 0}
    assert tasks.purge() == 0


def test_a_queue_of_a_broken_connector_fails_without_raising(fake_conn, fake_kind, monkeypatch):
    from sync import registry

    q = SyncQueue.objects.create(organization=fake_conn.organization, connection=fake_conn, resource="customers")
    monkeypatch.setitem(registry.KINDS, "fake", "tests.no_such_module.connector")
    registry.get_connector.cache_clear()
    assert tasks.run_queue(q.pk) == QueueState.FAILED
    q.refresh_from_db()
    assert not q.is_active and ("ModuleNotFoundError" in q.last_error or "ImportError" in q.last_error)
    assert SyncStatus.objects.get(connection=fake_conn).state == StatusState.FAILED
