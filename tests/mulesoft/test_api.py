from django.test import Client


def test_status_and_refresh_now(staff, org, other_org, endpoint, mulesoft, fake_clock):
    c = Client()
    c.force_login(staff)
    assert c.get("/api/mulesoft/loyalty/status").json()["last_outcome"] == "never"
    r = c.post("/api/mulesoft/loyalty/refresh")
    assert r.status_code == 202 and r.json()["enqueued"] is True
    body = c.get("/api/mulesoft/loyalty/status").json()
    assert body["last_outcome"] == "success" and body["tier_count"] == 3
    assert "token" not in str(body).lower()
    assert c.get(f"/api/mulesoft/loyalty/status?organization={other_org.pk}").status_code == 404
