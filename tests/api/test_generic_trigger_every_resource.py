"""One generic API for every connector: each resource that a kind registers (sync.registry, from
settings.SYNC_CONNECTORS) is triggered by POST /api/connections/{id}/resources/{resource}/sync (202 +
Location) and read back through the generic run detail. No list of resources is written here: a resource
added by docs/connectors/adding-a-resource.md is covered without an edit."""

from __future__ import annotations

import pytest
from django.conf import settings

from sync import registry, services

KINDS = sorted(settings.SYNC_CONNECTORS)


@pytest.fixture
def no_worker(monkeypatch):
    monkeypatch.setattr(services, "enqueue_queue", lambda queue_id: "test-task")


def test_the_walk_covers_the_resources_added_by_the_recipe():
    assert "coupons" in registry.get_connector("woocommerce").resources
    assert "customer_groups" in registry.get_connector("lightspeed").resources


@pytest.mark.parametrize("kind", KINDS)
def test_every_registered_resource_is_triggered_by_the_generic_route(api, org, make_connection, no_worker, kind):
    conn = make_connection(org, kind=kind, name=f"{kind} everything", external_account_id=f"{kind}-1")
    resources = sorted(registry.get_connector(kind).resources)
    assert resources, kind
    for resource in resources:
        response = api.post(f"/api/connections/{conn.pk}/resources/{resource}/sync", {}, format="json")
        assert response.status_code == 202, (kind, resource, response.content)
        body = response.json()
        assert body["resource"] == resource and body["connection_id"] == conn.pk
        assert response["Location"] == f"http://testserver/api/queues/{body['queue_id']}" == body["poll_url"]
        run = api.get(response["Location"])
        assert run.status_code == 200 and run.json()["resource"] == resource and run.json()["kind"] == kind


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_resource_lists_what_the_registry_holds(api, org, make_connection, no_worker, kind):
    conn = make_connection(org, kind=kind, name=f"{kind} unknown", external_account_id=f"{kind}-2")
    response = api.post(f"/api/connections/{conn.pk}/resources/no_such_thing/sync", {}, format="json")
    # 404 since issue 17 (a path segment naming nothing); 400 before.
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_resource"
    message = response.json()["error"]["message"]
    assert all(name in message for name in registry.get_connector(kind).resources), message
