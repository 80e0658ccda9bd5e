"""Tenancy and secrets across EVERY route of sync.api.urls (enumerated, so a new route is covered or fails):
org A's staff calling with org B's ids gets 404 or an empty list; a planted secret never comes back."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sync import services
from sync.api import urls as api_urls
from tests.fakes import FakeUpstream

from .conftest import SECRET, assert_error

LIST_ROUTES = {"api-connection-list", "api-status-list", "api-queue-list"}


def _routes():
    for pattern in api_urls.urlpatterns:
        view = pattern.callback.view_class
        methods = [m for m in ("get", "post") if hasattr(view, m)]
        yield pattern.name, sorted(pattern.pattern.converters), methods


def _url(name: str, params: list[str], *, conn, queue) -> str:
    values = {"connection_id": conn.pk, "queue_id": queue.pk, "resource": "customers"}
    return reverse(name, kwargs={p: values[p] for p in params})


@pytest.fixture
def b_data(other_conn, fake_kind):
    """Org B has a connection, a finished partial run (so every action has something to act on), a status."""
    fake_kind.records = [FakeUpstream.make(1), FakeUpstream.make(2, email="")]
    queue = services.sync_start(connection=other_conn, resource="customers").queue
    queue.refresh_from_db()
    return other_conn, queue


def test_every_route_is_listed():
    names = {name for name, _, _ in _routes()}
    assert names == LIST_ROUTES | {
        "api-connection-detail",
        "api-connection-health",
        "api-connection-test",
        "api-connection-statuses",
        "api-status-detail",
        "api-sync-trigger",
        "api-queue-detail",
        "api-queue-lines",
        "api-queue-activity",
        "api-queue-retry",
        "api-queue-force-done",
        "api-queue-apply-deletions",
        "api-queue-cancel",
    }


def test_org_a_sees_nothing_of_org_b(api, staff, b_data):
    conn, queue = b_data
    before = (queue.state, queue.failed_count, conn.needs_reauth)
    checked = 0
    for name, params, methods in _routes():
        url = _url(name, params, conn=conn, queue=queue)
        for method in methods:
            r = getattr(api, method)(url, {}, format="json") if method == "post" else api.get(url)
            if name in LIST_ROUTES:
                assert r.status_code == 200 and r.json()["count"] == 0, (name, r.content)
                # Filtering by B's connection id answers an empty list too, never B's rows.
                filtered = api.get(url, {"connection": conn.pk}) if name != "api-connection-list" else r
                assert filtered.status_code == 200 and filtered.json()["results"] == [], (name, filtered.content)
            else:
                assert_error(r, 404, "not_found")
            checked += 1
    assert checked == 16
    queue.refresh_from_db()
    conn.refresh_from_db()
    assert (queue.state, queue.failed_count, conn.needs_reauth) == before  # nothing was acted upon
    assert queue.activities.filter(actor=staff).count() == 0


def test_org_b_staff_sees_its_own(other_api, b_data):
    conn, queue = b_data
    assert other_api.get(f"/api/queues/{queue.pk}").status_code == 200
    assert other_api.get("/api/connections").json()["count"] == 1


def test_superuser_sees_all_organizations(superuser, fake_conn, b_data):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(superuser)
    assert client.get("/api/connections").json()["count"] == 2


def test_planted_secret_never_appears_in_any_response(api, fake_conn, fake_kind):
    """The connection's credentials, a secret echoed by the upstream and secret-named params must not leak."""
    fake_kind.records = [FakeUpstream.make(1, note=f"echo {SECRET}"), FakeUpstream.make(2, email="", token=SECRET)]
    trigger = api.post(
        f"/api/connections/{fake_conn.pk}/resources/customers/sync",
        {"params": {"token": SECRET, "nested": {"password": SECRET}}},
        format="json",
    )
    assert trigger.status_code == 202
    queue_id = trigger.json()["queue_id"]
    from sync.models import SyncQueue

    queue = SyncQueue.objects.get(pk=queue_id)
    bodies = [trigger.content]
    for name, params, methods in _routes():
        url = _url(name, params, conn=fake_conn, queue=queue)
        if "get" in methods:
            r = api.get(url)
            assert r.status_code == 200, (name, r.content)
            bodies.append(r.content)
        if "post" in methods and name != "api-sync-trigger":
            r = api.post(url, {}, format="json")
            assert r.status_code < 500, (name, r.content)
            bodies.append(r.content)
    # And when the upstream echoes the credential in an error.
    from connectors.base import AuthError

    fake_kind.fail_pages[0] = AuthError(f"bad key {SECRET}", status=401)
    bodies.append(api.post(f"/api/connections/{fake_conn.pk}/test").content)
    bodies.append(api.get(f"/api/connections/{fake_conn.pk}/health").content)
    for body in bodies:
        assert SECRET.encode() not in body
        assert fake_conn.credentials_encrypted.encode() not in body
        assert b"credentials_encrypted" not in body
