"""POST /api/connections/{id}/resources/{resource}/sync: 202 + Location, idempotency, running runs, throttling,
and every kind of bad input answering a 4xx in the one error shape."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from sync import services
from sync.api.views import idempotency_marker
from sync.models import QueueState, SyncQueue

from .conftest import assert_error


def url(conn, resource="customers") -> str:
    return f"/api/connections/{conn.pk}/resources/{resource}/sync"


def test_trigger_returns_202_with_location_and_runs(api, fake_conn, fake_kind):
    fake_kind.__init__(12)
    r = api.post(url(fake_conn), {"full_scan": True, "params": {"since": "2026-01-01"}}, format="json")
    assert r.status_code == 202, r.content
    body = r.json()
    queue = SyncQueue.objects.get(pk=body["queue_id"])
    assert body["result"] == "created" and body["created"] is True
    assert r["Location"] == f"http://testserver/api/queues/{queue.pk}" == body["poll_url"]
    # Q_SYNC runs the sync inline: the queue is finished by the time we poll.
    assert body["state"] == QueueState.DONE == queue.state
    assert queue.full_scan is True and queue.params == {"since": "2026-01-01"} and queue.origin == "api"
    polled = api.get(r["Location"])
    assert polled.status_code == 200 and polled.json()["done_count"] == 12


def test_empty_body_is_allowed(api, fake_conn):
    r = api.post(url(fake_conn))
    assert r.status_code == 202, r.content
    assert SyncQueue.objects.get(pk=r.json()["queue_id"]).full_scan is False


def test_same_idempotency_key_and_body_returns_same_queue(api, fake_conn, fake_kind):
    fake_kind.__init__(3)
    first = api.post(url(fake_conn), {"full_scan": True}, format="json", HTTP_IDEMPOTENCY_KEY="key-1")
    again = api.post(url(fake_conn), {"full_scan": True}, format="json", HTTP_IDEMPOTENCY_KEY="key-1")
    assert first.status_code == again.status_code == 202
    assert first.json()["queue_id"] == again.json()["queue_id"]
    # Issue 17 (on purpose): the replay is the first response byte for byte, marked as a replay; it used to
    # say result "idempotent" / created false.
    assert again.content == first.content and again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert SyncQueue.objects.filter(connection=fake_conn).count() == 1


def test_replay_of_a_queue_without_a_stored_response_says_idempotent(api, fake_conn, fake_kind):
    """Queues created before responses were stored (or by another door with a key) still answer."""
    fake_kind.__init__(3)
    first = api.post(url(fake_conn), {"full_scan": True}, format="json", HTTP_IDEMPOTENCY_KEY="key-old")
    SyncQueue.objects.filter(pk=first.json()["queue_id"]).update(idempotency_response=None)
    again = api.post(url(fake_conn), {"full_scan": True}, format="json", HTTP_IDEMPOTENCY_KEY="key-old")
    assert again.status_code == 202 and again.json()["queue_id"] == first.json()["queue_id"]
    assert again.json()["result"] == "idempotent" and again.json()["created"] is False


def test_same_key_different_body_is_422(api, fake_conn):
    assert api.post(url(fake_conn), {"full_scan": True}, format="json", HTTP_IDEMPOTENCY_KEY="k2").status_code == 202
    r = api.post(url(fake_conn), {"full_scan": False}, format="json", HTTP_IDEMPOTENCY_KEY="k2")
    err = assert_error(r, 422, "idempotency_key_reused")
    assert "different parameters" in err["message"]


def test_key_still_being_created_is_409_with_retry_after(api, fake_conn):
    # Another request holding the same key is mid-flight: its marker is in the shared cache.
    cache.add(idempotency_marker(fake_conn.organization_id, "busy-key"), "1", timeout=60)
    r = api.post(url(fake_conn), {}, format="json", HTTP_IDEMPOTENCY_KEY="busy-key")
    assert_error(r, 409, "idempotency_key_in_progress")
    assert r["Retry-After"] == "1"
    assert not SyncQueue.objects.exists()
    # Once it is released, the key works (the lock never outlives the request that took it).
    cache.delete(idempotency_marker(fake_conn.organization_id, "busy-key"))
    assert api.post(url(fake_conn), {}, format="json", HTTP_IDEMPOTENCY_KEY="busy-key").status_code == 202
    assert cache.get(idempotency_marker(fake_conn.organization_id, "busy-key")) is None


def test_second_trigger_while_running_returns_the_running_queue(api, fake_conn):
    running = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    r = api.post(url(fake_conn), {}, format="json")
    assert r.status_code == 202
    body = r.json()
    assert body["queue_id"] == running.pk and body["result"] == "running" and body["created"] is False
    assert "already in progress" in body["message"]
    assert SyncQueue.objects.filter(connection=fake_conn, is_active=True).count() == 1


def test_unknown_resource_is_404(api, fake_conn):  # was 400 before issue 17 (a path segment)
    err = assert_error(api.post(url(fake_conn, "nope"), {}, format="json"), 404, "unknown_resource")
    assert "customers" in err["message"]  # names the resources that do exist


def test_needs_reauth_connection_is_409(api, fake_conn):
    fake_conn.needs_reauth = True
    fake_conn.save()
    err = assert_error(api.post(url(fake_conn), {}, format="json"), 409, "connection_unavailable")
    assert "re-authorisation" in err["message"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"full_scan": "yes"}, "full_scan"),
        ({"full_scan": 1}, "full_scan"),
        ({"params": [1, 2]}, "params"),
        ({"params": "x"}, "params"),
        ({"params": {"a": "nul\x00byte"}}, "params"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(api, fake_conn, body, field):
    err = assert_error(api.post(url(fake_conn), body, format="json"), 400, "invalid")
    assert field in err["details"]["fields"], err


@pytest.mark.parametrize("raw", [b"{not json", b"[1,2]", b"null", b'"text"', b'{"full_scan": NaN}', b"\xff\xfe"])
def test_malformed_json_is_400(api, fake_conn, raw):
    r = api.post(url(fake_conn), raw, content_type="application/json")
    assert_error(r, 400)


def test_deeply_nested_params_are_400(api, fake_conn):
    params: dict = {}
    cur = params
    for _ in range(20):
        cur["a"] = {}
        cur = cur["a"]
    assert_error(api.post(url(fake_conn), {"params": params}, format="json"), 400, "invalid")


def test_huge_body_is_413(api, fake_conn, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    r = api.post(url(fake_conn), {"params": {"blob": "x" * 5000}}, format="json")
    assert_error(r, 413, "payload_too_large")


def test_form_body_is_415(api, fake_conn):
    assert_error(api.post(url(fake_conn), {"full_scan": "true"}), 415)


@pytest.mark.parametrize("key", ["x" * 256, "has space", "tab\tkey"])
def test_bad_idempotency_key_is_400(api, fake_conn, key):
    assert_error(api.post(url(fake_conn), {}, format="json", HTTP_IDEMPOTENCY_KEY=key), 400, "invalid")


def test_throttled_trigger_is_429_json(api, fake_conn, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"sync-trigger": "2/min"}}
    assert api.post(url(fake_conn), {}, format="json").status_code == 202
    assert api.post(url(fake_conn), {}, format="json").status_code == 202
    r = api.post(url(fake_conn), {}, format="json")
    err = assert_error(r, 429, "throttled")
    assert err["details"]["retry_after_seconds"] > 0
    assert int(r["Retry-After"]) > 0


def test_unauthenticated_is_401_and_non_staff_is_403(anon, fake_conn, staff):
    r = anon.post(url(fake_conn), {}, format="json")
    assert_error(r, 401, "not_authenticated")
    assert r["WWW-Authenticate"] == "Token"
    staff.is_staff = False
    staff.save()
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(staff)
    err = assert_error(client.post(url(fake_conn), {}, format="json"), 403, "permission_denied")
    assert "Staff" in err["message"]


def test_session_auth_enforces_csrf(staff, fake_conn):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.login(username="alice", password="pw-alice")
    assert_error(client.post(url(fake_conn), {}, format="json"), 403, "permission_denied")
    assert client.get("/api/queues").status_code == 200  # reads need no token


def test_connector_that_cannot_load_is_409_not_500(api, make_connection, org, monkeypatch):
    from sync import registry

    monkeypatch.setitem(registry.KINDS, "broken", "tests.api.no_such_module.connector")
    registry.get_connector.cache_clear()
    conn = make_connection(org, kind="broken")
    try:
        assert_error(api.post(url(conn), {}, format="json"), 409, "connector_unavailable")
        assert_error(api.post(f"/api/connections/{conn.pk}/test"), 409, "connector_unavailable")
    finally:
        registry.get_connector.cache_clear()


def test_idempotency_marker_is_released_after_an_error(api, fake_conn):
    assert api.post(url(fake_conn), {"full_scan": True}, format="json", HTTP_IDEMPOTENCY_KEY="k3").status_code == 202
    assert_error(api.post(url(fake_conn), {}, format="json", HTTP_IDEMPOTENCY_KEY="k3"), 422)
    assert cache.get(idempotency_marker(fake_conn.organization_id, "k3")) is None
    # ...so the matching retry still gets its queue instead of a 409.
    retry = api.post(url(fake_conn), {"full_scan": True}, format="json", HTTP_IDEMPOTENCY_KEY="k3")
    assert retry.status_code == 202 and retry["Idempotent-Replayed"] == "true"  # the replay of the first (issue 17)
