from django.test import Client


def test_status_and_refresh_now(staff, org, other_org, endpoint, mulesoft, fake_clock):
    c = Client()
    c.force_login(staff)
    assert c.get("/api/mulesoft/loyalty/status").json()["last_outcome"] == "never"
    # API bodies are JSON (docs/api.md); the test client's default empty multipart body is a 415 now.
    assert c.post("/api/mulesoft/loyalty/refresh").status_code == 415
    r = c.post("/api/mulesoft/loyalty/refresh", content_type="application/json")
    assert r.status_code == 202 and r.json()["enqueued"] is True
    body = c.get("/api/mulesoft/loyalty/status").json()
    assert body["last_outcome"] == "success" and body["tier_count"] == 3
    assert "token" not in str(body).lower()
    assert c.get(f"/api/mulesoft/loyalty/status?organization={other_org.pk}").status_code == 404


def test_status_never_shows_credentials_pasted_into_the_endpoint(staff, org, mulesoft):
    from connectors.mulesoft import conf
    from sync.services import setting_set

    url = mulesoft.endpoint.replace("http://", "http://loyalty-user:hunter2-pw@")
    setting_set(key=conf.ENDPOINT_SETTING, value=url, organization=org)
    c = Client()
    c.force_login(staff)
    body = c.get("/api/mulesoft/loyalty/status").json()
    assert body["configured"] is True
    assert "hunter2-pw" not in str(body) and "loyalty-user" not in str(body)
    assert body["endpoint"].endswith(mulesoft.endpoint.split("://", 1)[1])
