"""POST /api/lightspeed/connections/<id>/<resource>/sync: 202 + Location, staff-only, org-scoped."""

import pytest
from django.contrib.auth import get_user_model

from sync import services
from sync.models import SyncQueue, SyncStatus


def _url(conn, resource="customers"):
    return f"/api/lightspeed/connections/{conn.pk}/{resource}/sync"


@pytest.fixture
def no_worker(monkeypatch):
    """Enqueue nothing, so what the endpoint itself writes can be seen (django-q2 runs inline in tests)."""
    monkeypatch.setattr(services, "enqueue_queue", lambda queue_id: "test-task")


def test_trigger_answers_202_with_location_and_leaves_status_alone(client, staff, ls_conn, no_worker):
    client.force_login(staff)
    response = client.post(_url(ls_conn))
    assert response.status_code == 202, response.content
    body = response.json()
    queue = SyncQueue.objects.get()
    assert body["queue_id"] == str(queue.pk) and body["connection_id"] == str(ls_conn.pk)
    assert body["state"] == "draft" and body["created"] is True and body["total"] == "0"
    assert body["created_at"].endswith("Z") or "+00:00" in body["created_at"]
    assert response["Location"] == f"http://testserver/api/lightspeed/runs/{queue.pk}"
    assert not SyncStatus.objects.exists()  # the engine writes statuses, never the trigger
    poll = client.get(response["Location"])
    assert poll.status_code == 200 and poll.json()["queue_id"] == str(queue.pk)
    # A second trigger while the run is active gets that run back, not a twin.
    again = client.post(_url(ls_conn))
    assert again.status_code == 202 and again.json()["queue_id"] == str(queue.pk) and again.json()["created"] is False


def test_trigger_runs_the_sync(client, staff, ls_conn, sandbox):
    client.force_login(staff)
    response = client.post(_url(ls_conn, "customer_groups"))
    assert response.status_code == 202
    poll = client.get(response["Location"]).json()
    assert poll["state"] == "done" and poll["done"] == "3"
    assert int(poll["cursor_to"]) == max(r["version"] for r in sandbox.store["customer_groups"].values())


def test_trigger_is_staff_only(client, org, ls_conn, no_worker):
    assert client.post(_url(ls_conn)).status_code in (401, 403)
    user = get_user_model().objects.create_user("carol", password="pw")
    from sync.models import Membership

    Membership.objects.create(user=user, organization=org)
    client.force_login(user)
    assert client.post(_url(ls_conn)).status_code == 403
    assert not SyncQueue.objects.exists()


def test_other_organizations_connection_is_404(client, other_staff, ls_conn, no_worker):
    client.force_login(other_staff)
    assert client.post(_url(ls_conn)).status_code == 404
    assert not SyncQueue.objects.exists()


def test_other_organizations_run_is_404(client, staff, other_staff, ls_conn, no_worker):
    client.force_login(staff)
    location = client.post(_url(ls_conn))["Location"]
    client.force_login(other_staff)
    assert client.get(location).status_code == 404


def test_unknown_resource_and_needs_reauth(client, staff, ls_conn, no_worker):
    client.force_login(staff)
    bad = client.post(_url(ls_conn, "orders"))
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "unknown_resource"  # 400 before issue 17
    ls_conn.needs_reauth = True
    ls_conn.save()
    refused = client.post(_url(ls_conn))
    assert refused.status_code == 409 and "re-authorisation" in refused.json()["error"]["message"]


def test_idempotency_key(client, staff, ls_conn, no_worker):
    client.force_login(staff)
    first = client.post(_url(ls_conn), HTTP_IDEMPOTENCY_KEY="k-1")
    second = client.post(_url(ls_conn), HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.json()["queue_id"] == second.json()["queue_id"]
    conflict = client.post(_url(ls_conn) + "?full_scan=true", HTTP_IDEMPOTENCY_KEY="k-1")
    assert conflict.status_code == 422


def test_schema_documents_the_trigger(client, staff):
    client.force_login(staff)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert b"lightspeed_sync_trigger" in schema.content


def test_admin_lists_only_own_organizations_groups(client, superuser, staff, other_org, org, make_ls_connection):
    from django.contrib.auth.models import Permission

    from connectors.lightspeed.models import CustomerGroup
    from connectors.models import Connection

    mine = make_ls_connection(org, prefix="mine")
    theirs = make_ls_connection(other_org, prefix="theirs")
    Connection.objects.filter(pk=mine.pk).update(name="Acme register")
    Connection.objects.filter(pk=theirs.pk).update(name="Globex register")
    mine.refresh_from_db()
    theirs.refresh_from_db()
    CustomerGroup.objects.create(organization=org, connection=mine, external_id="g1", name="Ours")
    CustomerGroup.objects.create(organization=other_org, connection=theirs, external_id="g2", name="Theirs")
    staff.user_permissions.add(Permission.objects.get(codename="view_customergroup"))
    client.force_login(staff)
    page = client.get("/admin/lightspeed/customergroup/")
    assert page.status_code == 200 and b"Ours" in page.content and b"Theirs" not in page.content
    # The connection filter in the sidebar offers only the caller's connections, not every organization's.
    assert mine.name.encode() in page.content and theirs.name.encode() not in page.content
    client.force_login(superuser)
    page = client.get("/admin/lightspeed/customergroup/")
    assert b"Ours" in page.content and b"Theirs" in page.content


@pytest.mark.parametrize(
    "query,headers",
    [
        ("?full_scan=banana", {}),
        ("", {"HTTP_IDEMPOTENCY_KEY": "k" * 256}),  # sync_start keeps 255: it would share a prefix
        ("", {"HTTP_IDEMPOTENCY_KEY": "clé"}),
    ],
)
def test_bad_trigger_input_is_a_400_and_starts_nothing(client, staff, ls_conn, no_worker, query, headers):
    from sync.models import SyncQueue

    client.force_login(staff)
    r = client.post(_url(ls_conn) + query, **headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid"
    assert not SyncQueue.objects.filter(connection=ls_conn).exists()


def test_keys_that_differ_after_255_characters_are_different_runs(client, staff, ls_conn, no_worker):
    client.force_login(staff)
    first = client.post(_url(ls_conn), HTTP_IDEMPOTENCY_KEY="k" * 255)
    assert first.status_code == 202
    longer = client.post(_url(ls_conn), HTTP_IDEMPOTENCY_KEY="k" * 255 + "2")
    assert longer.status_code == 400  # never the first key's run
