"""A staff user of one organization sees and touches nothing of another, anywhere in the admin."""

import pytest
from django.urls import reverse

from sync import services
from sync.models import SyncQueue, SystemSetting


@pytest.fixture
def other_queue(other_conn, fake_kind):
    fake_kind.__init__(2)
    return services.sync_start(connection=other_conn, resource="customers").queue


def test_changelists_hide_other_organizations_rows(staff_client, fake_conn, other_conn, other_queue):
    for name in (
        "sync_syncqueue",
        "sync_syncstatus",
        "sync_syncactivity",
        "connectors_connection",
        "customers_customer",
        "sync_organization",
    ):
        body = staff_client.get(reverse(f"admin:{name}_changelist")).content.decode()
        assert "Globex" not in body, name
    assert f"#{other_queue.pk}<" not in staff_client.get(reverse("admin:sync_syncqueue_changelist")).content.decode()


def test_list_filters_offer_only_own_connections(staff_client, fake_conn, other_conn, other_queue, fake_kind):
    fake_kind.__init__(1)
    services.sync_start(connection=fake_conn, resource="customers")
    body = staff_client.get(reverse("admin:sync_syncqueue_changelist")).content.decode()
    assert "Acme shop" in body and "Globex shop" not in body
    body = staff_client.get(reverse("admin:sync_syncqueue_changelist"), {"conn": other_conn.pk})
    assert f"#{other_queue.pk}<" not in body.content.decode()


def test_change_pages_and_json_of_other_organizations_are_404(staff_client, other_conn, other_queue):
    assert staff_client.get(reverse("admin:sync_syncqueue_change", args=[other_queue.pk])).status_code == 404
    assert staff_client.get(reverse("admin:sync_syncqueue_progress", args=[other_queue.pk])).status_code == 404
    assert staff_client.get(reverse("admin:sync_syncqueue_action", args=[other_queue.pk, "retry"])).status_code == 404
    response = staff_client.get(reverse("admin:connectors_connection_change", args=[other_conn.pk]))
    assert response.status_code == 302  # Django admin: "doesn't exist. Perhaps it was deleted?" + redirect


def test_actions_ignore_other_organizations_queues(staff_client, other_queue):
    response = staff_client.post(
        reverse("admin:sync_syncqueue_changelist"),
        {"action": "queues_cancel", "_selected_action": [other_queue.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302)
    other_queue.refresh_from_db()
    assert other_queue.state == "done"
    assert (
        staff_client.post(reverse("admin:sync_syncqueue_action", args=[other_queue.pk, "force_done"])).status_code
        == 404
    )


def test_fk_dropdowns_and_autocomplete_list_only_own_organizations(staff_client, org, other_org):
    body = staff_client.get(reverse("admin:sync_systemsetting_add")).content.decode()
    assert "Acme" in body and "Globex" not in body
    response = staff_client.get(
        reverse("admin:autocomplete"),
        {"app_label": "connectors", "model_name": "connection", "field_name": "organization", "term": ""},
    )
    names = [r["text"] for r in response.json()["results"]]
    assert names == ["Acme"]


def test_staff_cannot_save_a_setting_into_another_organization(staff_client, org, other_org):
    response = staff_client.post(
        reverse("admin:sync_systemsetting_add"),
        {"organization": other_org.pk, "key": "k", "value": "1", "description": ""},
    )
    assert response.status_code == 200 and not SystemSetting.objects.exists()  # form error, not saved
    response = staff_client.post(
        reverse("admin:sync_systemsetting_add"), {"organization": org.pk, "key": "k", "value": "1", "description": ""}
    )
    assert response.status_code == 302
    assert SystemSetting.objects.get(key="k").organization == org


def test_dashboard_of_other_staff_is_empty(client, other_staff, fake_conn, fake_kind):
    fake_kind.__init__(1)
    services.sync_start(connection=fake_conn, resource="customers")
    client.force_login(other_staff)
    body = client.get(reverse("admin:sync_dashboard")).content.decode()
    assert "Acme shop" not in body and 'data-testid="no-connections"' in body
    assert "Acme" not in client.get(reverse("admin:sync_syncqueue_changelist")).content.decode()
    assert SyncQueue.objects.count() == 1


def test_superuser_sees_everything(client, superuser, fake_conn, other_conn):
    client.force_login(superuser)
    body = client.get(reverse("admin:connectors_connection_changelist")).content.decode()
    assert "Acme shop" in body and "Globex shop" in body
