"""The webhook receiver: every case of issue 4, signed exactly as WooCommerce signs, and issue 16's rules
(docs/engine.md "Webhook rules"): a delivery is a hint to re-fetch one record from the store, deduplicated
by delivery id and by body hash; only the store confirms a delete."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from connectors.woocommerce.models import WebhookDelivery
from connectors.woocommerce.services import signature_for
from customers.models import Customer
from sync.models import LineAction, Origin, SyncActivity, SyncQueue, SyncQueueLine

from .conftest import WEBHOOK_SECRET


@pytest.fixture
def store(woo):
    """(sandbox, connection): the store every delivery is re-fetched from."""
    return woo(size=3)


@pytest.fixture
def sandbox(store):
    return store[0]


@pytest.fixture
def conn(store):
    return store[1]


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


@pytest.fixture(autouse=True)
def upstream_501(sandbox):
    """Customer 501 exists in the store, as the bodies below say."""
    sandbox.data["customers"][501] = customer()


def _activity(event):
    return SyncActivity.objects.filter(event=event)


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
    assert r.json()["refetch"] == {"resource": "customers", "id": 501}
    q = _queues().get()
    assert q.origin == Origin.WEBHOOK and q.resource == "customers"
    line = SyncQueueLine.objects.get(queue=q)
    assert line.external_id == "501" and line.action == LineAction.UPSERT and line.state == "done"
    row = Customer.objects.get(connection=conn, external_id="501")
    assert row.email == "c501@example.test" and row.organization_id == conn.organization_id


def test_what_is_stored_is_what_the_store_answers_not_the_body(post, conn, sandbox):
    sandbox.data["customers"][501]["first_name"] = "Current"
    assert post(customer(first_name="FromTheBody")).status_code == 200
    assert Customer.objects.get(connection=conn, external_id="501").first_name == "Current"


def test_deleted_marks_the_record_once_the_store_confirms(post, conn, sandbox):
    post(customer(), delivery="1")
    del sandbox.data["customers"][501]  # the store answers 404 woocommerce_rest_invalid_id
    r = post({"id": 501}, topic="customer.deleted", delivery="2")
    assert r.status_code == 200
    assert SyncQueueLine.objects.filter(external_id="501", action=LineAction.DELETE, state="done").exists()
    row = Customer.objects.get(connection=conn, external_id="501")
    assert row.deleted_at is not None and row.email == "c501@example.test"  # marked, not removed


def test_deleted_topic_for_a_record_the_store_still_has_deletes_nothing(post, conn):
    post(customer(), delivery="1")
    r = post({"id": 501}, topic="customer.deleted", delivery="2")
    assert r.status_code == 200
    assert Customer.objects.get(connection=conn, external_id="501").deleted_at is None
    assert not SyncQueueLine.objects.filter(action=LineAction.DELETE).exists()


def test_replay_with_a_new_or_missing_delivery_id_changes_nothing(post, conn, sandbox):
    body = customer()
    assert post(body, delivery="orig").status_code == 200
    lines = SyncQueueLine.objects.count()
    sandbox.data["customers"][501]["first_name"] = "Edited later"
    for delivery in ("forged-new-id", ""):
        r = post(body, delivery=delivery)
        assert r.status_code == 200 and "duplicate" in r.json()
    assert SyncQueueLine.objects.count() == lines
    assert Customer.objects.get(connection=conn, external_id="501").first_name == "Wanda"  # no re-fetch happened
    assert _activity("webhook.duplicate").count() == 2
    assert WebhookDelivery.objects.count() == 1


def test_topic_flip_replayed_deletes_nothing(post, conn):
    """A captured customer.updated body resent as customer.deleted: dropped as a duplicate."""
    body = customer()
    post(body, delivery="1")
    r = post(body, topic="customer.deleted", delivery="2", headers={"X-WC-Webhook-Event": "deleted"})
    assert r.status_code == 200 and "duplicate" in r.json()
    assert Customer.objects.get(connection=conn, external_id="501").deleted_at is None


def test_topic_flip_never_seen_before_deletes_nothing(post, conn, fake_clock):
    """The same flip with a body we never saw (or saw before the window): re-fetched, still upserted."""
    body = customer()
    post(body, delivery="1")
    fake_clock.advance(8 * 86400)  # past WOOCOMMERCE_WEBHOOK_DEDUPE_DAYS (7)
    r = post(body, topic="customer.deleted", delivery="2")
    assert r.status_code == 200 and r.json()["refetch"]["id"] == 501
    assert Customer.objects.get(connection=conn, external_id="501").deleted_at is None
    assert not SyncQueueLine.objects.filter(action=LineAction.DELETE).exists()


def test_old_body_replayed_never_overwrites_newer_data(post, conn, sandbox, fake_clock):
    old = customer(first_name="Old")
    sandbox.data["customers"][501] = dict(old)
    post(old, delivery="1")
    assert "duplicate" in post(old, delivery="1b").json()  # the body hash, within the window
    sandbox.update("customers", 501, first_name="New")
    post(sandbox.data["customers"][501], delivery="2")
    assert Customer.objects.get(connection=conn, external_id="501").first_name == "New"
    # Once a newer body was accepted, the old one is only a hint: re-fetched, and the store says "New".
    assert post(old, delivery="3").json()["refetch"]["id"] == 501
    fake_clock.advance(8 * 86400)
    assert post(old, delivery="4").json()["refetch"]["id"] == 501
    assert Customer.objects.get(connection=conn, external_id="501").first_name == "New"


def test_trash_restore_trash_again_converges(post, conn, sandbox):
    """The second ``{"id": N}`` delete body of a record is not mistaken for a replay of the first."""
    from commerce.models import Order

    oid = sandbox.ids("orders")[0]
    post(sandbox.data["orders"][oid], topic="order.updated", delivery="0")
    sandbox.trash("orders", oid)
    post({"id": oid}, topic="order.deleted", delivery="1")
    assert Order.objects.get(connection=conn, external_id=str(oid)).deleted_at is not None
    sandbox.update("orders", oid, status="processing")  # restored
    post(sandbox.data["orders"][oid], topic="order.restored", delivery="2")
    assert Order.objects.get(connection=conn, external_id=str(oid)).deleted_at is None
    sandbox.trash("orders", oid)
    assert "refetch" in post({"id": oid}, topic="order.deleted", delivery="3").json()
    assert Order.objects.get(connection=conn, external_id=str(oid)).deleted_at is not None


def test_same_delete_body_for_two_resources_is_not_a_duplicate(post, conn, sandbox):
    """Customers are WordPress users, products are posts: ``{"id": 1}`` can be both."""
    r1 = post({"id": 1}, topic="customer.deleted", delivery="1")
    r2 = post({"id": 1}, topic="product.deleted", delivery="2")
    assert r1.json()["refetch"]["resource"] == "customers" and r2.json()["refetch"]["resource"] == "products"


def test_a_404_that_is_not_the_stores_invalid_id_is_no_delete(post, conn, sandbox):
    post(customer(), delivery="1")
    base = conn.base_url
    conn.base_url = base.rstrip("/") + "/wp-json/nowhere/"  # the store answers 404 rest_no_route
    conn.save()
    del sandbox.data["customers"][501]
    assert post({"id": 501}, topic="customer.deleted", delivery="2").status_code == 200
    assert Customer.objects.get(connection=conn, external_id="501").deleted_at is None
    failed = _activity("webhook.refetch_failed").get()
    assert "rest_no_route" in failed.message


def test_trashed_order_and_product_mirror_as_deleted(post, conn, sandbox):
    from commerce.models import Order, Product

    oid, pid = sandbox.ids("orders")[0], sandbox.ids("products")[0]
    post(sandbox.data["orders"][oid], topic="order.updated", delivery="o1")
    post(sandbox.data["products"][pid], topic="product.updated", delivery="p1")
    assert Order.objects.get(connection=conn, external_id=str(oid)).deleted_at is None
    sandbox.trash("orders", oid)
    sandbox.trash("products", pid)
    post({"id": oid}, topic="order.deleted", delivery="o2")
    post({"id": pid}, topic="product.deleted", delivery="p2")
    assert Order.objects.get(connection=conn, external_id=str(oid)).deleted_at is not None
    assert Product.objects.get(connection=conn, external_id=str(pid)).deleted_at is not None


def test_trashed_records_in_a_page_are_deletions():
    from connectors.woocommerce.resources import RESOURCES

    for name in ("orders", "products", "coupons"):
        assert RESOURCES[name].is_deleted({"id": 1, "status": "trash"})
        assert not RESOURCES[name].is_deleted({"id": 1, "status": "publish"})
    assert not RESOURCES["customers"].is_deleted({"id": 1, "status": "trash"})


def test_orders_and_products_topics(post, conn, sandbox):
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
    product = {
        "id": 5005,
        "name": "Mate",
        "status": "publish",
        "price": "3.50",
        "date_modified_gmt": "2025-01-02T10:00:00",
    }
    sandbox.data["orders"][77], sandbox.data["products"][5005] = dict(order), dict(product)
    assert post(order, topic="order.created", delivery="10").status_code == 200
    assert post(product, topic="product.updated", delivery="11").status_code == 200
    assert Order.objects.get(connection=conn, external_id="77").customer_external_id == "501"
    assert Product.objects.get(connection=conn, external_id="5005").name == "Mate"


def test_coupon_topics_are_synced(post, conn, sandbox):
    from commerce.models import Coupon

    kid = sandbox.ids("coupons")[0]
    assert post(sandbox.data["coupons"][kid], topic="coupon.updated").status_code == 200
    assert Coupon.objects.filter(connection=conn, external_id=str(kid), deleted_at__isnull=True).exists()


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
    conn.credentials = {**conn.credentials, "webhook_secret": ""}
    conn.save()
    assert post(customer(), secret="").status_code == 401


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'{"email": "x@y.z"}', b'{"id": "abc"}', b'{"id": -4}', b"\xff\xfe"]
)
def test_signed_body_without_a_usable_id_is_acknowledged_and_recorded(post, body):
    """Signed by the store, so a non-2xx would only count towards WooCommerce disabling the webhook."""
    r = post(body)
    assert r.status_code == 200 and "ignored" in r.json()
    assert not _queues().exists()
    assert _activity("webhook.ignored").count() == 1


def test_action_topics_get_200_and_an_activity_row(post, conn):
    body = {"action": "woocommerce_add_to_cart", "arg": "abc123"}
    r = post(body, topic="action.woocommerce_add_to_cart")
    assert r.status_code == 200 and r.json()["ignored"] == "action.woocommerce_add_to_cart"
    row = _activity("webhook.ignored").get()
    assert row.connection_id == conn.pk and row.data["topic"] == "action.woocommerce_add_to_cart"
    assert not _queues().exists()


def test_missing_topic_is_acknowledged(post):
    r = post(customer(), topic="")
    assert r.status_code == 200 and "ignored" in r.json()
    assert not _queues().exists()


def test_the_signed_body_names_the_resource_not_the_topic_header(post, conn, sandbox):
    """A customer body (its own _links.self says customers) relabelled order.updated re-fetches the customer."""
    body = customer(_links={"self": [{"href": "https://shop.example/wp-json/wc/v3/customers/501"}]})
    r = post(body, topic="order.updated")
    assert r.json()["refetch"] == {"resource": "customers", "id": 501}
    assert Customer.objects.filter(connection=conn, external_id="501").exists()


def test_duplicate_delivery_is_dropped(post):
    assert post(customer(first_name="One"), delivery="abc-1").status_code == 200
    r = post(customer(first_name="Two"), delivery="abc-1")
    assert r.status_code == 200 and r.json()["duplicate"] == "abc-1"
    assert SyncQueueLine.objects.count() == 1 and WebhookDelivery.objects.count() == 1


def test_unknown_or_foreign_connection_is_404(post, conn, other_org, make_connection):
    assert post(customer(), connection_id=999999).status_code == 404
    other = make_connection(other_org, kind="lightspeed", credentials={"webhook_secret": WEBHOOK_SECRET})
    assert post(customer(), connection_id=other.pk).status_code == 404


def test_unsynced_topics_are_acknowledged(post):
    r = post({"id": 3, "code": "SALE"}, topic="subscription.created")
    assert r.status_code == 200 and r.json()["ignored"] == "subscription.created"
    assert not _queues().exists()
    assert _activity("webhook.ignored").exists()


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
