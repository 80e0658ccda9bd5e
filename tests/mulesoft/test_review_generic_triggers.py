"""Review of issue 15: MuleSoft through the generic triggers a staff user has (the dashboard's Sync now, the
generic API trigger, manage.py sync_run), and the dashboard shows its last success and counts."""

from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from connectors.mulesoft import services
from customers.models import LoyaltyTier
from sync.models import SyncActivity, SyncQueue, SyncStatus


def _status(connection):
    return SyncStatus.objects.get(connection=connection, resource="loyalty_tiers")


def test_dashboard_sync_now_api_and_sync_run(org, staff, endpoint, mulesoft, fake_clock, capsys):
    connection = services.configured_connection(org)
    client = Client()
    client.force_login(staff)
    response = client.post(
        reverse("admin:sync_dashboard_sync"), {"connection": connection.pk, "resource": "loyalty_tiers"}
    )
    assert response.status_code == 302
    queue = SyncQueue.objects.get(connection=connection)
    assert queue.state == "done" and queue.done_count == 3 and queue.created_by == staff
    assert LoyaltyTier.objects.filter(organization=org, deleted_at__isnull=True).count() == 3
    status = _status(connection)
    assert status.state == "success" and status.last_success_at is not None and status.records_synced == 3
    succeeded = SyncActivity.objects.get(queue=queue, event="loyalty.refresh.succeeded")
    assert succeeded.data["tier_count"] == 3 and succeeded.actor == staff
    body = client.get(reverse("admin:sync_dashboard")).content.decode()
    assert f'data-testid="resource-{connection.pk}-loyalty_tiers"' in body and "Success" in body

    fake_clock.advance(1)
    api = APIClient()
    api.force_authenticate(staff)
    response = api.post(f"/api/connections/{connection.pk}/resources/loyalty_tiers/sync", {}, format="json")
    assert response.status_code == 202, response.content
    assert SyncQueue.objects.get(pk=response.json()["queue_id"]).state == "done"

    fake_clock.advance(1)
    call_command("sync_run", str(connection.pk), "loyalty_tiers")
    assert SyncQueue.objects.filter(connection=connection, state="done").count() == 3
    assert SyncActivity.objects.filter(event="loyalty.refresh.succeeded").count() == 3
    assert mulesoft.calls == 3
