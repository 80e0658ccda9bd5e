"""Issue 16 for Tiendanube: a record deleted upstream stays live through incremental runs (a cursor cannot
see deletions) and is marked deleted by the scheduled reconciliation full scan; the schedule is daily by
default and configurable per connection."""

from __future__ import annotations

import pytest
from django_q.models import Schedule

from commerce.models import Product
from sync import runpolicy, tasks
from sync.connection_runs import connection_sync
from sync.models import SyncActivity

pytestmark = pytest.mark.django_db


def test_a_product_deleted_upstream_is_marked_deleted_by_the_reconciliation_scan(tn_sandbox, store_conn):
    sb = tn_sandbox(stores=1, records=6)
    conn = store_conn(sb)
    connection_sync(connection_id=conn.pk)
    products = sb.stores["1001"].data["products"]
    gone = products.pop(2)["id"]
    connection_sync(connection_id=conn.pk)  # incremental: the deletion is invisible to it
    assert Product.objects.get(connection=conn, external_id=str(gone)).deleted_at is None
    queue_id = tasks.start_scheduled_sync(conn.pk, "products", True)
    assert Product.objects.get(connection=conn, external_id=str(gone)).deleted_at is not None
    assert Product.objects.filter(connection=conn, deleted_at__isnull=True).count() == 5
    assert SyncActivity.objects.get(queue_id=queue_id, event="records.marked_deleted").data["count"] == 1


def test_an_empty_answer_from_the_store_wipes_nothing(tn_sandbox, store_conn):
    sb = tn_sandbox(stores=1, records=6)
    conn = store_conn(sb)
    connection_sync(connection_id=conn.pk)
    sb.stores["1001"].data["customers"] = []
    tasks.start_scheduled_sync(conn.pk, "customers", True)
    from customers.models import Customer

    assert Customer.objects.filter(connection=conn, deleted_at__isnull=True).count() == 6


def test_reconciliation_schedules_are_daily_and_configurable_per_connection(tn_sandbox, store_conn):
    sb = tn_sandbox(stores=3, records=1)
    default, hourly, off = store_conn(sb, "1001"), store_conn(sb, "1002"), store_conn(sb, "1003")
    hourly.config = {"reconcile_hours": 6}
    hourly.save()
    off.config = {"reconcile_hours": 0}
    off.save()
    runpolicy.schedules_register()
    for resource in ("products", "orders", "customers"):
        daily = Schedule.objects.get(name=f"tiendanube:{default.pk}:{resource}:reconcile")
        assert (daily.minutes, daily.func, daily.args) == (
            24 * 60,
            "sync.tasks.start_scheduled_sync",
            f"{default.pk}, {resource!r}, True",
        )
        assert Schedule.objects.get(name=f"tiendanube:{hourly.pk}:{resource}:reconcile").minutes == 6 * 60
        assert not Schedule.objects.filter(name=f"tiendanube:{off.pk}:{resource}:reconcile").exists()
    # Paused with the connection's other schedules when it needs re-authorisation.
    runpolicy.connection_mark_needs_reauth(default, reason="token revoked")
    assert Schedule.objects.get(name=f"tiendanube:{default.pk}:products:reconcile").repeats == 0
