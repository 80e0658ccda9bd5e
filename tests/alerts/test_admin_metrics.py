"""Incidents in the admin (read-only, organization-scoped), the rule form (webhook write-only), and the
open-incidents gauge on /metrics."""

import pytest
from django.test import Client

from alerts.models import AlertRule, Incident

pytestmark = pytest.mark.django_db

TOKEN = "T0B0xyzzy-secret-path"


def incident(conn, resource="orders", kind="failure_streak", state="open"):
    from core import clock

    return Incident.objects.create(
        organization=conn.organization,
        connection=conn,
        resource=resource,
        kind=kind,
        state=state,
        opened_at=clock.now(),
    )


@pytest.fixture
def two_orgs(org, other_org, make_connection):
    mine = make_connection(org, name="Mine")
    theirs = make_connection(other_org, name="Theirs")
    return incident(mine), incident(theirs, kind="stale")


def test_incident_changelist_is_scoped_and_read_only(two_orgs, staff):
    mine, theirs = two_orgs
    client = Client()
    client.force_login(staff)
    page = client.get("/admin/alerts/incident/")
    assert page.status_code == 200 and b"Mine" in page.content and b"Theirs" not in page.content
    assert client.get(f"/admin/alerts/incident/{theirs.pk}/change/").status_code in (302, 404)
    detail = client.get(f"/admin/alerts/incident/{mine.pk}/change/")
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert client.get("/admin/alerts/incident/add/").status_code == 403
    assert client.post(f"/admin/alerts/incident/{mine.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Incident.objects.count() == 2


def test_rule_form_keeps_the_webhook_write_only(org, staff, make_connection, dns):
    dns({"hooks.example.com": ["93.184.216.34"]})  # the save-time address rule resolves the host
    conn = make_connection(org, name="Mine")
    client = Client()
    client.force_login(staff)
    url = f"https://hooks.example.com/services/{TOKEN}"
    response = client.post(
        "/admin/alerts/alertrule/add/",
        {
            "organization": org.pk,
            "connection": conn.pk,
            "enabled": "on",
            "email_enabled": "on",
            "failure_streak": "5",
            "freshness": "",
            "webhook_url": url,
        },
    )
    assert response.status_code == 302, response.content[:2000]
    rule = AlertRule.objects.get()
    assert rule.webhook_url == url and rule.failure_streak == 5 and TOKEN not in rule.webhook_url_encrypted
    page = client.get(f"/admin/alerts/alertrule/{rule.pk}/change/")
    assert page.status_code == 200 and TOKEN.encode() not in page.content
    bad = client.post(
        f"/admin/alerts/alertrule/{rule.pk}/change/",
        {"organization": org.pk, "connection": conn.pk, "enabled": "on", "webhook_url": "file:///etc/passwd"},
    )
    assert bad.status_code == 200 and b"only http(s) URLs" in bad.content
    client.post(
        f"/admin/alerts/alertrule/{rule.pk}/change/",
        {"organization": org.pk, "connection": conn.pk, "enabled": "on", "clear_webhook": "on"},
    )
    rule.refresh_from_db()
    assert not rule.has_webhook and rule.failure_streak is None


def test_rule_for_another_organizations_connection_is_refused(org, other_org, staff, make_connection):
    theirs = make_connection(other_org, name="Theirs")
    client = Client()
    client.force_login(staff)
    response = client.post("/admin/alerts/alertrule/add/", {"organization": org.pk, "connection": theirs.pk})
    assert response.status_code == 200 and not AlertRule.objects.exists()


def test_open_incidents_gauge(two_orgs, settings):
    from prometheus_client.parser import text_string_to_metric_families

    settings.METRICS_TOKEN = "metrics-token-0123456789"
    mine, _ = two_orgs
    incident(mine.connection, resource="products", state="closed")
    body = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token-0123456789").content.decode()
    got = {
        tuple(sorted(s.labels.items())): s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
        if s.name == "synchub_alerts_open_incidents"
    }
    assert got == {
        (("incident", "failure_streak"), ("kind", "woocommerce")): 1,
        (("incident", "stale"), ("kind", "woocommerce")): 1,
    }


def test_rule_form_refuses_a_webhook_that_resolves_to_a_private_address(org, staff, make_connection, dns):
    dns({"hooks.internal.example": ["10.0.0.5"]})
    conn = make_connection(org, name="Mine")
    client = Client()
    client.force_login(staff)
    response = client.post(
        "/admin/alerts/alertrule/add/",
        {
            "organization": org.pk,
            "connection": conn.pk,
            "enabled": "on",
            "email_enabled": "on",
            "webhook_url": "https://hooks.internal.example/x",
        },
    )
    assert response.status_code == 200 and AlertRule.objects.count() == 0
    assert "10.0.0.5" in response.content.decode()
