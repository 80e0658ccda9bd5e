from django_q.models import Schedule

from sync.runpolicy import schedules_register as schedules_register_all


def test_specs_purge_and_per_connection_timers(org, make_connection):
    """WooCommerce's declaration: a daily purge, and each connection's own interval (config)."""
    make_connection(org, name="timed", config={"sync_every_minutes": 15})
    make_connection(org, name="manual only")
    make_connection(org, kind="lightspeed", name="other kind", config={"sync_every_minutes": 5})
    schedules_register_all()
    specs = {s.name: s for s in Schedule.objects.filter(name__startswith="woocommerce:")}
    assert "woocommerce:purge-webhook-deliveries" in specs
    timed = [
        s for s in specs.values() if s.func == "sync.tasks.start_scheduled_sync" and not s.name.endswith(":reconcile")
    ]
    assert sorted(s.name.rsplit(":", 1)[1] for s in timed) == ["coupons", "customers", "orders", "products"]
    assert all(s.minutes == 15 for s in timed)
    # Issue 16: every connection's incremental resources also get a daily reconciliation full scan.
    reconcile = sorted(s.name.split(":")[2] for s in specs.values() if s.name.endswith(":reconcile"))
    assert reconcile == ["coupons", "coupons", "orders", "orders", "products", "products"]
    assert all(s.minutes == 24 * 60 for s in specs.values() if s.name.endswith(":reconcile"))


def test_contributed_specs_register(org, make_connection):
    conn = make_connection(org, config={"sync_every_minutes": 30})
    schedules_register_all()
    schedules_register_all()  # idempotent
    assert Schedule.objects.filter(name=f"woocommerce:{conn.pk}:orders").count() == 1
