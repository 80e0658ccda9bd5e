"""Connections (no secrets), health / needs-reauth, test-connection, and SyncStatus endpoints."""

from __future__ import annotations

from connectors.base import AuthError, TransientError
from sync import services

from .conftest import SECRET, assert_error


def test_list_and_detail_never_include_secrets(api, fake_conn, make_connection, org):
    make_connection(org, kind="woocommerce", name="shop")
    body = api.get("/api/connections").json()
    assert [c["name"] for c in body["results"]] == ["fake test", "shop"]
    detail = api.get(f"/api/connections/{fake_conn.pk}")
    assert detail.status_code == 200
    data = detail.json()
    assert "credentials" not in data and "credentials_encrypted" not in data
    assert data["has_credentials"] is True and data["organization"] == "acme" and data["config"] == {"region": "eu"}
    assert SECRET.encode() not in detail.content and fake_conn.credentials_encrypted.encode() not in detail.content
    assert [c["name"] for c in api.get("/api/connections", {"kind": "woocommerce"}).json()["results"]] == ["shop"]
    assert api.get("/api/connections", {"needs_reauth": "true"}).json()["count"] == 0
    assert_error(api.get("/api/connections", {"needs_reauth": "perhaps"}), 400, "invalid")


def test_secret_named_config_values_are_masked(api, make_connection, org):
    conn = make_connection(org, kind="fake", config={"api_key": "not-for-eyes", "region": "us"})
    data = api.get(f"/api/connections/{conn.pk}").json()
    assert data["config"] == {"api_key": "[redacted]", "region": "us"}


def test_health_reports_needs_reauth_and_failing_resources(api, fake_conn):
    services.status_upsert(connection=fake_conn, resource="customers", state="failed", last_error="boom")
    services.sync_start(connection=fake_conn, resource="customers", enqueue=False)
    services.connection_mark_needs_reauth(connection=fake_conn, reason="HTTP 401 from GET /x: invalid token")
    body = api.get(f"/api/connections/{fake_conn.pk}/health").json()
    assert body["needs_reauth"] is True and body["health"] == "down"
    assert body["failing_resources"] == ["customers"] and body["active_queues"] == 1
    assert "invalid token" in body["last_error"]
    listed = api.get("/api/connections", {"needs_reauth": "true"}).json()["results"]
    assert [c["id"] for c in listed] == [fake_conn.pk]


def test_test_connection_ok_reports_upstream_answer(api, fake_conn, fake_kind):
    fake_kind.__init__(3)
    r = api.post(f"/api/connections/{fake_conn.pk}/test")
    assert r.status_code == 200, r.content
    assert r.json()["ok"] is True and "3 record(s)" in r.json()["message"]
    fake_conn.refresh_from_db()
    assert fake_conn.health == "ok"


def test_test_connection_auth_failure_is_502_and_marks_needs_reauth(api, fake_conn, fake_kind):
    fake_kind.fail_pages[0] = AuthError(f"HTTP 401: token {SECRET} rejected", status=401)
    r = api.post(f"/api/connections/{fake_conn.pk}/test")
    err = assert_error(r, 502, "upstream_auth_failed")
    assert err["details"]["upstream_status"] == 401 and SECRET.encode() not in r.content
    fake_conn.refresh_from_db()
    assert fake_conn.needs_reauth is True
    assert api.get(f"/api/connections/{fake_conn.pk}/health").json()["needs_reauth"] is True


def test_test_connection_transient_failure_is_502(api, fake_conn, fake_kind, fake_clock):
    fake_kind.fail_pages[0] = TransientError("HTTP 503 from GET /customers: maintenance", status=503)
    err = assert_error(api.post(f"/api/connections/{fake_conn.pk}/test"), 502, "upstream_error")
    assert "maintenance" in err["message"]
    fake_conn.refresh_from_db()
    assert fake_conn.health == "degraded" and fake_conn.consecutive_failures == 1


def test_test_connection_connector_crash_is_502_not_500(api, fake_conn, fake_kind):
    fake_kind.fail_pages[0] = ZeroDivisionError("bug")
    assert_error(api.post(f"/api/connections/{fake_conn.pk}/test"), 502, "upstream_error")


def test_test_connection_unknown_kind_is_409(api, make_connection, org):
    conn = make_connection(org, kind="not-a-kind")
    assert_error(api.post(f"/api/connections/{conn.pk}/test"), 409, "connector_unavailable")


def test_statuses_list_and_detail(api, fake_conn, fake_kind):
    fake_kind.__init__(4)
    services.sync_start(connection=fake_conn, resource="customers")
    rows = api.get("/api/statuses").json()["results"]
    assert len(rows) == 1 and rows[0]["state"] == "success"
    # Big integers (cursors, versions, 64-bit counts) are strings.
    assert rows[0]["cursor"] == "4" and rows[0]["records_synced"] == "4"
    assert api.get("/api/statuses", {"state": "failed"}).json()["count"] == 0
    assert api.get("/api/statuses", {"connection": fake_conn.pk, "resource": "customers"}).json()["count"] == 1
    assert_error(api.get("/api/statuses", {"state": "zzz"}), 400, "invalid")
    per_conn = api.get(f"/api/connections/{fake_conn.pk}/statuses").json()
    assert [r["resource"] for r in per_conn["results"]] == ["customers"]
    detail = api.get(f"/api/connections/{fake_conn.pk}/statuses/customers")
    assert detail.status_code == 200 and detail.json()["last_queue_id"] is not None
    err = assert_error(api.get(f"/api/connections/{fake_conn.pk}/statuses/products"), 404, "not_found")
    assert "never synced" in err["message"]


def test_version_cursor_beyond_js_precision_stays_exact(api, fake_conn):
    big = str(2**63 - 7)
    services.status_upsert(connection=fake_conn, resource="customers", cursor=big, records_synced=2**62)
    body = api.get(f"/api/connections/{fake_conn.pk}/statuses/customers").json()
    assert body["cursor"] == big and body["records_synced"] == str(2**62)
