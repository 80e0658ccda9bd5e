"""The webhook receiver: every case of issue 4, signed exactly as WooCommerce signs."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from connectors.woocommerce.models import WebhookDelivery
from connectors.woocommerce.services import signature_for
from customers.models import Customer
from sync.models import LineAction, Origin, SyncQueue, SyncQueueLine

from .conftest import WEBHOOK_SECRET


@pytest.fixture
def conn(org, make_connection):
    return make_connection(
        org,
        base_url="https://shop.example",
        credentials={"consumer_key": "ck", "consumer_secret": "cs", "webhook_secret": WEBHOOK_SECRET},
    )


@pytest.fixture
def post(client, conn, django_capture_on_commit_callbacks):
    """POST like WooCommerce does; on-commit work (the queue run, inline in tests) is executed."""

    def send(
        body,
        *,
        topic="customer.updated",
        delivery="1",
        secret=WEBHOOK_SECRET,
        signature=None,
        content_type="application/json",
        connection_id=None,
        headers=None,
    ):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs = {
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Delivery-ID": delivery,
            "X-WC-Webhook-ID": "17",
            "X-WC-Webhook-Source": "https://shop.example/",
        }
        if signature is not False:
            hdrs["X-WC-Webhook-Signature"] = signature or signature_for(raw, secret)
        hdrs.update(headers or {})
        url = reverse("woocommerce:webhook", args=[connection_id or conn.pk])
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, data=raw, content_type=content_type, headers=hdrs)

    return send


def customer(cid=501, **over):
    return {
        "id": cid,
        "email": f"c{cid}@example.test",
        "first_name": "Wanda",
        "last_name": "Hook",
        "username": f"w{cid}",
        "billing": {"phone": "+598 1"},
        "shipping": {},
        "date_created_gmt": "2025-01-01T10:00:00",
        "date_modified_gmt": "2025-01-02T10:00:00",
        "role": "customer",
        **over,
    }


def _queues():
    return SyncQueue.objects.filter(lane="webhook")


def test_creation_ping_gets_200(client, conn):
    url = reverse("woocommerce:webhook", args=[conn.pk])
    r = client.post(url, data="webhook_id=17", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200 and r.json()["webhook_id"] == "17"
    assert not _queues().exists()


@pytest.mark.parametrize("topic", ["customer.created", "customer.updated", "customer.restored"])
def test_created_and_updated_become_lines_and_records(post, conn, topic):
    r = post(customer(), topic=topic)
    assert r.status_code == 200, r.content
    q = _queues().get()
    assert q.origin == Origin.WEBHOOK and q.resource == "customers" and r.json()["queue"] == q.pk
    line = SyncQueueLine.objects.get(queue=q)
    assert line.external_id == "501" and line.action == LineAction.UPSERT and line.state == "done"
    row = Customer.objects.get(connection=conn, external_id="501")
    assert row.email == "c501@example.test" and row.organization_id == conn.organization_id


def test_deleted_marks_the_record(post, conn):
    post(customer(), delivery="1")
    r = post({"id": 501}, topic="customer.deleted", delivery="2")
    assert r.status_code == 200
    assert SyncQueueLine.objects.filter(external_id="501", action=LineAction.DELETE, state="done").exists()
    row = Customer.objects.get(connection=conn, external_id="501")
    assert row.deleted_at is not None and row.email == "c501@example.test"  # marked, not removed


def test_orders_and_products_topics(post, conn):
    from commerce.models import Order, Product

    order = {
        "id": 77,
        "number": "77",
        "status": "processing",
        "total": "10.00",
        "customer_id": 501,
        "date_modified_gmt": "2025-01-02T10:00:00",
        "line_items": [],
    }
    assert post(order, topic="order.created", delivery="10").status_code == 200
    product = {
        "id": 5,
        "name": "Mate",
        "status": "publish",
        "price": "3.50",
        "date_modified_gmt": "2025-01-02T10:00:00",
    }
    assert post(product, topic="product.updated", delivery="11").status_code == 200
    assert Order.objects.get(connection=conn, external_id="77").customer_external_id == "501"
    assert Product.objects.get(connection=conn, external_id="5").name == "Mate"


def test_bad_signature_is_401_and_enqueues_nothing(post, conn):
    r = post(customer(), secret="not-the-secret")
    assert r.status_code == 401
    assert not _queues().exists() and not Customer.objects.exists() and not WebhookDelivery.objects.exists()
    # signed over different bytes than were sent
    r = post(customer(), signature=signature_for(b'{"id": 1}', WEBHOOK_SECRET))
    assert r.status_code == 401 and not _queues().exists()


def test_missing_signature_is_401(post):
    assert post(customer(), signature=False).status_code == 401
    assert not _queues().exists()


def test_connection_without_a_secret_rejects_everything(post, conn):
    conn.credentials = {"consumer_key": "ck", "consumer_secret": "cs"}
    conn.save()
    assert post(customer(), secret="").status_code == 401


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'{"email": "x@y.z"}', b'{"id": "abc"}', b'{"id": -4}', b"\xff\xfe"]
)
def test_malformed_body_is_400(post, body):
    r = post(body)
    assert r.status_code == 400
    assert not _queues().exists()


def test_missing_topic_is_400(post):
    assert post(customer(), topic="").status_code == 400


def test_duplicate_delivery_is_dropped(post):
    assert post(customer(first_name="One"), delivery="abc-1").status_code == 200
    r = post(customer(first_name="One"), delivery="abc-1")
    assert r.status_code == 200 and r.json()["duplicate"] == "abc-1"
    assert SyncQueueLine.objects.count() == 1 and WebhookDelivery.objects.count() == 1


def test_unknown_or_foreign_connection_is_404(post, conn, other_org, make_connection):
    assert post(customer(), connection_id=999999).status_code == 404
    other = make_connection(other_org, kind="lightspeed", credentials={"webhook_secret": WEBHOOK_SECRET})
    assert post(customer(), connection_id=other.pk).status_code == 404


def test_unsynced_topics_are_acknowledged(post):
    r = post({"id": 3, "code": "SALE"}, topic="coupon.created")
    assert r.status_code == 200 and r.json()["ignored"] == "coupon.created"
    assert not _queues().exists()


def test_get_is_not_allowed(client, conn):
    assert client.get(reverse("woocommerce:webhook", args=[conn.pk])).status_code == 405


def test_sandbox_sends_signed_webhooks_end_to_end(woo, client, django_capture_on_commit_callbacks):
    """The sandbox changes its data and delivers signed webhooks to our receiver."""
    sandbox, conn = woo(size=10)
    sandbox.webhook_url = reverse("woocommerce:webhook", args=[conn.pk])
    sandbox.webhook_secret = WEBHOOK_SECRET

    def transport(url, body, headers):
        extra = {k: v for k, v in headers.items() if k != "Content-Type"}
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, data=body, content_type=headers["Content-Type"], headers=extra).status_code

    sandbox.webhook_transport = transport
    assert sandbox.ping() == 200
    created = sandbox.create("customers", email="fresh@example.test", role="customer")
    sandbox.update("customers", created["id"], first_name="Renamed")
    sandbox.delete("customers", created["id"])
    assert [w["status"] for w in sandbox.webhooks_sent] == [200, 200, 200]
    assert [w["topic"] for w in sandbox.webhooks_sent] == ["customer.created", "customer.updated", "customer.deleted"]
    row = Customer.objects.get(connection=conn, external_id=str(created["id"]))
    assert row.first_name == "Renamed" and row.deleted_at is not None


def test_purge_forgets_old_deliveries(conn, fake_clock):
    from connectors.woocommerce.services import webhook_deliveries_purge

    WebhookDelivery.objects.create(connection=conn, delivery_id="old", received_at=fake_clock.now())
    fake_clock.advance(8 * 86400)
    WebhookDelivery.objects.create(connection=conn, delivery_id="new", received_at=fake_clock.now())
    assert webhook_deliveries_purge() == 1
    assert list(WebhookDelivery.objects.values_list("delivery_id", flat=True)) == ["new"]
