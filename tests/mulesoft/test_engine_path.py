"""One path, the same rows, whoever triggers the refresh (issue 15)."""

from django.forms.models import model_to_dict

from connectors.mulesoft import services
from customers.models import LoyaltyTier
from sync import services as sync_services
from sync.models import SyncQueue, SyncStatus
from sync.tasks import run_queue


def _rows(org):
    skip = {"id", "synced_at"}
    return [
        {k: v for k, v in model_to_dict(t).items() if k not in skip}
        for t in LoyaltyTier.objects.filter(organization=org).order_by("external_id")
    ]


def test_list_refresh_now_and_api_trigger_leave_identical_rows(org, endpoint, mulesoft, fake_clock):
    mulesoft.tiers[0]["color"] = "bronze-ish"  # a field we have no column for: kept in extra, on every path
    assert services.loyalty_refresh(org.pk).outcome == "success"
    first = _rows(org)
    assert [r["extra"] for r in first].count({"color": "bronze-ish"}) == 1
    LoyaltyTier.objects.all().delete()
    fake_clock.advance(7200)
    assert services.loyalty_refresh_request([org.pk]) == [org.pk]  # the customer list's path, in a worker
    run_queue(SyncQueue.objects.get(is_active=True).pk)
    assert _rows(org) == first
    status = SyncStatus.objects.get(connection__kind="mulesoft", resource="loyalty_tiers")
    assert status.state == "success" and status.last_success_at is not None and status.records_synced == 3


def test_throttle_is_a_no_op_and_refresh_now_forces(org, endpoint, mulesoft, fake_clock):
    connection = services.configured_connection(org)
    first = sync_services.sync_start(connection=connection, resource="loyalty_tiers", origin="schedule", enqueue=False)
    run_queue(first.queue.pk)
    again = sync_services.sync_start(connection=connection, resource="loyalty_tiers", origin="schedule", enqueue=False)
    assert again.reason == "throttled" and again.queue.pk == first.queue.pk and SyncQueue.objects.count() == 1
    forced = services.loyalty_refresh_now(org, actor=None)
    assert forced["enqueued"] is True and SyncQueue.objects.count() == 2
    # An explicit trigger (API, Sync now, manage.py: origin manual/api) is never throttled.
    explicit = sync_services.sync_start(connection=connection, resource="loyalty_tiers", origin="api", enqueue=False)
    assert explicit.created


def test_customers_import_no_connector():
    import ast
    import pathlib

    for path in pathlib.Path("customers").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            assert not any(n.startswith("connectors") for n in names), path
