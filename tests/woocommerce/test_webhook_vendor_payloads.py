"""The WooCommerce webhook receiver over the vendor's published bodies and headers
(tests/fixtures/vendor/woocommerce, sources in SOURCES.md): a delivery body "is exactly the same as if
requested via the REST API" (customer.json, order.json, product.json, coupon.json), ``*.deleted`` sends
``{"id": N}``, ``action.*`` sends ``{"action", "arg"}`` and creating a webhook pings ``webhook_id=N``.
The store behind the connection (the sandbox) holds the same published records, so the re-fetch every
delivery triggers answers with the vendor's shapes too."""

from __future__ import annotations

import copy
import json

import pytest
from django.urls import reverse

from commerce.models import Coupon, Order, Product
from connectors.woocommerce.services import signature_for
from customers.models import Customer
from sync.models import SyncActivity, SyncQueue
from tests.vendor_fixtures import load, raw

from .conftest import WEBHOOK_SECRET

RECORDS = {"customer": "customers", "order": "orders", "product": "products", "coupon": "coupons"}
MODELS = {"customers": Customer, "orders": Order, "products": Product, "coupons": Coupon}


@pytest.fixture
def store(woo):
    """A store holding the published customer 25, order 727, product 794 and coupon 719."""
    sandbox, conn = woo(size=1)
    for subject, resource in RECORDS.items():
        record = load("woocommerce", subject)
        sandbox.data[resource][record["id"]] = copy.deepcopy(record)
    return sandbox, conn


@pytest.fixture
def deliver(client, store, django_capture_on_commit_callbacks):
    """POST a body with the published headers (constructed_webhook_headers.json), signed as WooCommerce does."""
    _, conn = store

    def send(body: bytes, topic: str | None, *, delivery: str = "1", signed: bool = True):
        headers = dict(load("woocommerce", "constructed_webhook_headers"))
        if topic is None:
            headers = {}
        else:
            resource, _, event = topic.partition(".")
            headers.update(
                {"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Resource": resource, "X-WC-Webhook-Event": event}
            )
            headers["X-WC-Webhook-Delivery-ID"] = delivery
        if signed:
            headers["X-WC-Webhook-Signature"] = signature_for(body, WEBHOOK_SECRET)
        url = reverse("woocommerce:webhook", args=[conn.pk])
        content_type = "application/json" if topic is not None else "application/x-www-form-urlencoded"
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, data=body, content_type=content_type, headers=headers)

    return send


@pytest.mark.parametrize("subject", list(RECORDS))
@pytest.mark.parametrize("event", ["created", "updated"])
def test_published_record_bodies_are_refetched_and_stored(deliver, store, subject, event):
    _, conn = store
    body = raw("woocommerce", f"{subject}.json")
    record = json.loads(body)
    r = deliver(body, f"{subject}.{event}")
    assert r.status_code == 200, r.content
    assert r.json()["refetch"] == {"resource": RECORDS[subject], "id": record["id"]}
    row = MODELS[RECORDS[subject]].objects.get(connection=conn, external_id=str(record["id"]))
    assert row.deleted_at is None


def test_published_customer_lands_with_its_values(deliver, store):
    _, conn = store
    deliver(raw("woocommerce", "customer.json"), "customer.updated")
    row = Customer.objects.get(connection=conn, external_id="25")
    assert row.email == "john.doe@example.com" and row.first_name == "John"


def test_published_order_body_relabelled_as_a_customer_topic_refetches_the_order(deliver, store):
    """order.json carries its own _links.self (.../orders/727): the signed body names the resource."""
    _, conn = store
    r = deliver(raw("woocommerce", "order.json"), "customer.deleted")
    assert r.json()["refetch"] == {"resource": "orders", "id": 727}
    assert Order.objects.get(connection=conn, external_id="727").deleted_at is None
    assert not Customer.objects.filter(connection=conn, external_id="727").exists()


@pytest.mark.parametrize("in_store", [True, False])
def test_published_deleted_body_deletes_only_what_the_store_confirms(deliver, store, in_store):
    sandbox, conn = store
    deliver(raw("woocommerce", "customer.json"), "customer.created", delivery="a")
    if not in_store:
        del sandbox.data["customers"][25]  # GET answers 404 woocommerce_rest_invalid_id
    r = deliver(raw("woocommerce", "constructed_webhook_deleted.json"), "customer.deleted", delivery="b")
    assert r.status_code == 200
    assert (Customer.objects.get(connection=conn, external_id="25").deleted_at is not None) is not in_store


def test_published_action_body_gets_200_and_an_activity_row(deliver, store):
    _, conn = store
    r = deliver(raw("woocommerce", "constructed_webhook_action.json"), "action.woocommerce_add_to_cart")
    assert r.status_code == 200 and r.json()["ignored"] == "action.woocommerce_add_to_cart"
    assert SyncActivity.objects.filter(event="webhook.ignored", connection=conn).count() == 1
    assert not SyncQueue.objects.filter(lane="webhook").exists()


def test_published_ping_gets_exactly_200(deliver):
    r = deliver(raw("woocommerce", "constructed_webhook_ping_body.txt"), None, signed=False)
    assert r.status_code == 200 and r.json()["webhook_id"] == "142"


def test_published_trashed_order_mirrors_as_deleted(deliver, store):
    sandbox, conn = store
    deliver(raw("woocommerce", "order.json"), "order.updated", delivery="a")
    sandbox.trash("orders", 727)
    deliver(
        raw("woocommerce", "constructed_webhook_deleted.json").replace(b"25", b"727"), "order.deleted", delivery="b"
    )
    assert Order.objects.get(connection=conn, external_id="727").deleted_at is not None


# --- the sandbox sends the published shapes ----------------------------------------------------------------
def test_sandbox_deliveries_carry_the_published_headers_and_bodies(woo):
    sandbox, _ = woo(size=3)
    sent = []
    sandbox.webhook_url = "/hook/"
    sandbox.webhook_transport = lambda url, body, headers: sent.append((body, headers)) or 200
    published = set(load("woocommerce", "constructed_webhook_headers"))
    cid = sandbox.create("customers", role="customer")["id"]
    sandbox.delete("customers", cid)
    oid = sandbox.ids("orders")[0]
    sandbox.trash("orders", oid)
    for body, headers in sent:
        assert published <= set(headers)
        assert {"X-WC-Webhook-Signature", "X-WC-Webhook-Delivery-ID"} <= set(headers)
        assert headers["X-WC-Webhook-Signature"] == signature_for(body, sandbox.webhook_secret)
        assert headers["X-WC-Webhook-Source"].endswith("/")
    deleted = load("woocommerce", "constructed_webhook_deleted")
    assert [json.loads(b) for b, _ in sent[1:]] == [{**deleted, "id": cid}, {**deleted, "id": oid}]
    assert [h["X-WC-Webhook-Topic"] for _, h in sent] == ["customer.created", "customer.deleted", "order.deleted"]
    ping = []
    sandbox.webhook_transport = lambda url, body, headers: ping.append((body, headers)) or 200
    sandbox.webhook_id = 142
    sandbox.ping()
    assert ping[0][0] == raw("woocommerce", "constructed_webhook_ping_body.txt")
    assert not any(k.startswith("X-WC-") for k in ping[0][1])
