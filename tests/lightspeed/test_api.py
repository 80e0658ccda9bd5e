"""POST /api/lightspeed/connections/<id>/<resource>/sync (Lightspeed's original path): the engine's generic
trigger (same view), scoped to Lightspeed connections. 202 + Location, staff-only, org-scoped."""

import pytest
from django.contrib.auth import get_user_model

from sync import services
from sync.models import SyncQueue, SyncStatus

JSON = "application/json"  # a bodiless POST; the test client's default is an (empty) multipart body, a 415


def _url(conn, resource="customers"):
    return f"/api/lightspeed/connections/{conn.pk}/{resource}/sync"


@pytest.fixture
def no_worker(monkeypatch):
    """Enqueue nothing, so what the endpoint itself writes can be seen (django-q2 runs inline in tests)."""
    monkeypatch.setattr(services, "enqueue_queue", lambda queue_id: "test-task")


def test_trigger_answers_202_with_location_and_leaves_status_alone(client, staff, ls_conn, no_worker):
    client.force_login(staff)
    response = client.post(_url(ls_conn), content_type=JSON)
    assert response.status_code == 202, response.content
    body = response.json()
    queue = SyncQueue.objects.get()
    # The generic trigger's answer (docs/api.md), on purpose no longer the old copy's string-typed shape.
    assert body["queue_id"] == queue.pk and body["connection_id"] == ls_conn.pk
    assert body["state"] == "draft" and body["created"] is True and body["result"] == "created"
    assert response["Location"] == f"http://testserver/api/queues/{queue.pk}" == body["poll_url"]
    assert not SyncStatus.objects.exists()  # the engine writes statuses, never the trigger
    poll = client.get(response["Location"])
    assert poll.status_code == 200 and poll.json()["id"] == queue.pk
    # The original poll path is an alias of the generic run detail.
    old_poll = client.get(f"/api/lightspeed/runs/{queue.pk}")
    assert old_poll.status_code == 200 and old_poll.json() == poll.json()
    # A second trigger while the run is active gets that run back, not a twin.
    again = client.post(_url(ls_conn), content_type=JSON)
    assert again.status_code == 202 and again.json()["queue_id"] == queue.pk and again.json()["created"] is False
    assert again.json()["result"] == "running"


def test_the_original_path_is_the_generic_view(client, staff, ls_conn, no_worker):
    from django.urls import resolve

    from sync.api.views import QueueDetailView, SyncTriggerView

    assert resolve(_url(ls_conn)).func.view_class is SyncTriggerView
    assert resolve("/api/lightspeed/runs/1").func.view_class is QueueDetailView
    client.force_login(staff)
    generic = client.post(
        f"/api/connections/{ls_conn.pk}/resources/customers/sync", content_type=JSON, HTTP_IDEMPOTENCY_KEY="same"
    )
    alias = client.post(_url(ls_conn), content_type=JSON, HTTP_IDEMPOTENCY_KEY="same")
    assert generic.status_code == alias.status_code == 202
    # Issue 17: a replay is the first response byte for byte, marked (it said result "idempotent" before).
    assert alias.json()["queue_id"] == generic.json()["queue_id"] and alias["Idempotent-Replayed"] == "true"
    assert alias.content == generic.content


def test_the_original_path_reaches_only_lightspeed(client, staff, org, make_connection, no_worker):
    woo = make_connection(org, kind="woocommerce")
    client.force_login(staff)
    assert (
        client.post(_url(woo), content_type=JSON).status_code == 404
    )  # a WooCommerce connection is not a Lightspeed one
    queue = services.sync_start(connection=woo, resource="customers").queue
    assert client.get(f"/api/lightspeed/runs/{queue.pk}").status_code == 404
    assert client.get(f"/api/queues/{queue.pk}").status_code == 200


def test_trigger_runs_the_sync(client, staff, ls_conn, sandbox):
    client.force_login(staff)
    response = client.post(_url(ls_conn, "customer_groups"), content_type=JSON)
    assert response.status_code == 202
    poll = client.get(response["Location"]).json()
    assert poll["state"] == "done" and poll["done_count"] == 3
    assert int(poll["cursor_to"]) == max(r["version"] for r in sandbox.store["customer_groups"].values())


def test_trigger_is_staff_only(client, org, ls_conn, no_worker):
    assert client.post(_url(ls_conn), content_type=JSON).status_code in (401, 403)
    user = get_user_model().objects.create_user("carol", password="pw")
    from sync.models import Membership

    Membership.objects.create(user=user, organization=org)
    client.force_login(user)
    assert client.post(_url(ls_conn), content_type=JSON).status_code == 403
    assert not SyncQueue.objects.exists()


def test_other_organizations_connection_is_404(client, other_staff, ls_conn, no_worker):
    client.force_login(other_staff)
    assert client.post(_url(ls_conn), content_type=JSON).status_code == 404
    assert not SyncQueue.objects.exists()


def test_other_organizations_run_is_404(client, staff, other_staff, ls_conn, no_worker):
    client.force_login(staff)
    location = client.post(_url(ls_conn), content_type=JSON)["Location"]
    client.force_login(other_staff)
    assert client.get(location).status_code == 404


def test_unknown_resource_and_needs_reauth(client, staff, ls_conn, no_worker):
    client.force_login(staff)
    bad = client.post(_url(ls_conn, "orders"), content_type=JSON)
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "unknown_resource"  # 400 before issue 17
    ls_conn.needs_reauth = True
    ls_conn.save()
    refused = client.post(_url(ls_conn), content_type=JSON)
    assert refused.status_code == 409 and "re-authorisation" in refused.json()["error"]["message"]


def test_idempotency_key(client, staff, ls_conn, no_worker):
    client.force_login(staff)
    first = client.post(_url(ls_conn), content_type=JSON, HTTP_IDEMPOTENCY_KEY="k-1")
    second = client.post(_url(ls_conn), content_type=JSON, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.json()["queue_id"] == second.json()["queue_id"]
    conflict = client.post(_url(ls_conn) + "?full_scan=true", content_type=JSON, HTTP_IDEMPOTENCY_KEY="k-1")
    assert conflict.status_code == 422


def test_full_scan_in_the_query_is_the_body_parameter(client, staff, ls_conn, no_worker):
    client.force_login(staff)
    as_body = client.post(
        _url(ls_conn), {"full_scan": True}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    as_query = client.post(_url(ls_conn) + "?full_scan=true", content_type=JSON, HTTP_IDEMPOTENCY_KEY="k-2")
    assert as_body.status_code == as_query.status_code == 202
    assert as_query["Idempotent-Replayed"] == "true" and as_query.content == as_body.content  # issue 17
    clash = client.post(_url(ls_conn) + "?full_scan=false", {"full_scan": True}, content_type="application/json")
    assert clash.status_code == 400 and clash.json()["error"]["code"] == "invalid"


def test_schema_documents_the_trigger(client, staff):
    client.force_login(staff)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "post" in paths["/api/lightspeed/connections/{connection_id}/{resource}/sync"]
    assert "get" in paths["/api/lightspeed/runs/{queue_id}"]


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
    r = client.post(_url(ls_conn) + query, content_type=JSON, **headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid"
    assert not SyncQueue.objects.filter(connection=ls_conn).exists()


def test_keys_that_differ_after_255_characters_are_different_runs(client, staff, ls_conn, no_worker):
    client.force_login(staff)
    first = client.post(_url(ls_conn), content_type=JSON, HTTP_IDEMPOTENCY_KEY="k" * 255)
    assert first.status_code == 202
    longer = client.post(_url(ls_conn), content_type=JSON, HTTP_IDEMPOTENCY_KEY="k" * 255 + "2")
    assert longer.status_code == 400  # never the first key's run
