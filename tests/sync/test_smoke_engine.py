from customers.models import Customer
from sync import services
from sync.models import QueueState, SyncStatus


def test_it_syncs_all_records_and_advances_cursor(fake_conn, fake_kind):
    fake_kind.__init__(35)
    result = services.sync_start(connection=fake_conn, resource="customers")
    q = result.queue
    q.refresh_from_db()
    assert q.state == QueueState.DONE, (q.state, q.last_error, q.fetch_error)
    assert q.done_count == 35 and q.total_count == 35 and not q.is_active
    assert Customer.objects.filter(connection=fake_conn).count() == 35
    status = SyncStatus.objects.get(connection=fake_conn, resource="customers")
    assert status.state == "success" and status.cursor == "35"
