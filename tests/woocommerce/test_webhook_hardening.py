"""Issue 17: unsigned creation pings cannot flood anything (deduplicated and rate-limited per connection,
while a genuine first ping still gets exactly 200), and signed bodies are bounded in size and depth (a
deeply nested body is a 400 in the one error shape, never an HTML 500)."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.urls import reverse

from connectors.woocommerce import conf
from connectors.woocommerce.services import signature_for
from sync.models import SyncActivity, SyncQueue
from tests.vendor_fixtures import raw

from .conftest import WEBHOOK_SECRET


@pytest.fixture
def conn(org, make_connection):
    cache.clear()
    yield make_connection(org, base_url="https://shop.example", credentials={"webhook_secret": WEBHOOK_SECRET})
    cache.clear()


def ping(client, conn, body: str):
    url = reverse("woocommerce:webhook", args=[conn.pk])
    return client.post(url, data=body, content_type="application/x-www-form-urlencoded")


def pings_recorded(conn) -> int:
    return SyncActivity.objects.filter(connection=conn, event="webhook.ping").count()


def test_genuine_first_ping_is_exactly_200_and_recorded_once(client, conn):
    body = raw("woocommerce", "constructed_webhook_ping_body.txt").decode().strip()
    first = ping(client, conn, body)
    assert first.status_code == 200 and first.json() == {"ok": True, "webhook_id": "142"}
    again = ping(client, conn, body)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert pings_recorded(conn) == 1


def test_a_flood_of_pings_writes_at_most_the_limit_and_every_ping_still_gets_200(client, conn, monkeypatch):
    monkeypatch.setattr(conf, "PING_LIMIT", 5)
    answers = [ping(client, conn, f"webhook_id={n}").status_code for n in range(1, 41)]
    assert answers == [200] * 40
    assert pings_recorded(conn) == 5
    # The store owner's genuine webhook, created during the flood, is still acknowledged with 200.
    assert ping(client, conn, "webhook_id=9999").status_code == 200
    assert not SyncQueue.objects.filter(connection=conn).exists()


def test_the_limit_is_per_connection_and_per_window(client, conn, org, make_connection, monkeypatch, fake_clock):
    monkeypatch.setattr(conf, "PING_LIMIT", 2)
    other = make_connection(org, name="other shop", base_url="https://other.example")
    for n in range(5):
        ping(client, conn, f"webhook_id={n + 1}")
    assert pings_recorded(conn) == 2
    assert ping(client, other, "webhook_id=1").status_code == 200 and pings_recorded(other) == 1
    fake_clock.advance(conf.PING_WINDOW_SECONDS)
    assert ping(client, conn, "webhook_id=77").status_code == 200
    assert pings_recorded(conn) == 3


@pytest.mark.parametrize("body", ["webhook_id=abc", "webhook_id=1&x=2", "webhook_id=" + "1" * 100, "x=1"])
def test_malformed_unsigned_bodies_are_401_in_the_error_shape(client, conn, body):
    r = ping(client, conn, body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"
    assert pings_recorded(conn) == 0


def test_deeply_nested_signed_body_is_a_400_not_a_500(client, conn, settings):
    raw = ("[" * 100_000 + "]" * 100_000).encode()
    for body in (raw, json.dumps({"id": 1, "meta": json.loads("[" * 100 + "]" * 100)}).encode()):
        headers = {
            "X-WC-Webhook-Topic": "customer.updated",
            "X-WC-Webhook-Delivery-ID": "d1",
            "X-WC-Webhook-Signature": signature_for(body, WEBHOOK_SECRET),
        }
        url = reverse("woocommerce:webhook", args=[conn.pk])
        r = client.post(url, data=body, content_type="application/json", headers=headers)
        assert r.status_code == 400 and r["Content-Type"] == "application/json"
        assert r.json()["error"]["code"] == "too_deep"
    assert not SyncQueue.objects.filter(connection=conn).exists()


def test_oversized_body_is_413_json_before_the_signature_is_checked(client, conn, monkeypatch):
    monkeypatch.setattr(conf, "WEBHOOK_MAX_BODY", 1000)
    url = reverse("woocommerce:webhook", args=[conn.pk])
    r = client.post(url, data=b"{" + b" " * 2000 + b"}", content_type="application/json")
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("debug", [False, True])
def test_webhook_route_never_answers_html(client, conn, settings, debug):
    settings.DEBUG = debug
    url = reverse("woocommerce:webhook", args=[conn.pk])
    for response in (
        client.get(url),
        client.post("/connectors/woocommerce/webhooks/abc/", data="x", content_type="text/plain"),
    ):
        assert response.status_code in (404, 405)
        assert response["Content-Type"] == "application/json" and "error" in response.json()
