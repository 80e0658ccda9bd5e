"""Every Tiendanube webhook handler over the vendor's published bodies (tests/fixtures/vendor/tiendanube,
sources in SOURCES.md): store events on the combined URL, each LGPD event on its own URL with its body
exactly as published (no ``event`` key; ``store_id`` a number or, as the LGPD testing tool sends it, a
string). The sandbox must send exactly these shapes."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from commerce.models import Order, Product
from connectors.models import Connection
from connectors.tiendanube.models import PrivacyRequest
from customers.models import Customer
from sync.models import SyncActivity
from tests import vendor_fixtures

pytestmark = pytest.mark.django_db
BASE = "/connectors/tiendanube/webhooks/"
URLS = {
    "store/redact": BASE + "store-redact/",
    "customers/redact": BASE + "customers-redact/",
    "customers/data_request": BASE + "customers-data-request/",
}
STORE = "123"  # the store id of the published examples


def send(sb, url: str, body: bytes):
    return Client().post(url, data=body, content_type="application/json", HTTP_X_LINKEDSTORE_HMAC_SHA256=sb.sign(body))


def fixture_bytes(name: str, *, store_id_as_string: bool = False) -> bytes:
    body = vendor_fixtures.raw("tiendanube", f"{name}.json")
    if store_id_as_string:
        payload = json.loads(body)
        payload["store_id"] = str(payload["store_id"])
        body = json.dumps(payload).encode()
    return body


@pytest.fixture
def store123(tn_sandbox, store_conn):
    """Store 123 of the examples, holding the published customer (as id 1) and order (as id 213), synced."""
    from sync.connection_runs import connection_sync

    sb = tn_sandbox(stores=0, records=0)
    store = sb.add_store(STORE, records=0)
    customer = {**vendor_fixtures.load("tiendanube", "customer"), "id": 1}
    order = vendor_fixtures.load("tiendanube", "order")
    order = {**order, "id": 213, "customer": {**order["customer"], "id": 1}}
    product = {**vendor_fixtures.load("tiendanube", "product"), "id": 1948209}
    store.data["customers"].append(customer)
    store.data["orders"].append(order)
    store.data["products"].append(product)
    conn = store_conn(sb, store_id=STORE)
    assert connection_sync(connection_id=conn.pk).outcome == "success"
    assert Customer.objects.filter(connection=conn, external_id="1").exists()
    assert Order.objects.filter(connection=conn, external_id="213").exists()
    return sb, conn


def test_product_created_example_refetches_the_product(store123, django_capture_on_commit_callbacks):
    sb, conn = store123
    Product.objects.filter(connection=conn).delete()
    with django_capture_on_commit_callbacks(execute=True):
        r = send(sb, BASE, fixture_bytes("webhook_product_created"))
    assert r.status_code == 200, r.content
    assert Product.objects.filter(connection=conn, external_id="1948209", deleted_at__isnull=True).exists()


@pytest.mark.parametrize("as_string", [False, True])
def test_data_request_example_is_recorded_and_exported(store123, as_string, staff, other_staff):
    sb, conn = store123
    r = send(
        sb, URLS["customers/data_request"], fixture_bytes("lgpd_customers_data_request", store_id_as_string=as_string)
    )
    assert r.status_code == 200, r.content
    req = PrivacyRequest.objects.get(event="customers/data_request")
    assert req.outcome == "recorded" and req.customer_external_id == "1" and req.store_id == STORE
    assert req.request["data_request_id"] == "456" and req.request["orders_requested"] == ["213", "3415", "21515"]
    assert "email@email.com" not in json.dumps(req.request)  # identifiers only, no copy of personal data
    url = f"/admin/tiendanube/privacyrequest/{req.pk}/export/"
    outsider = Client()
    outsider.force_login(other_staff)
    assert outsider.get(url).status_code == 404  # another organization's request
    assert not SyncActivity.objects.filter(event="tiendanube.data_export_downloaded").exists()
    staff_client = Client()
    staff_client.force_login(staff)
    changelist = staff_client.get("/admin/tiendanube/privacyrequest/")
    assert changelist.status_code == 200 and url.encode() in changelist.content
    export = staff_client.get(url)
    assert export.status_code == 200 and export["Content-Disposition"].startswith("attachment;")
    data = json.loads(export.content)
    assert [c["external_id"] for c in data["customer"]] == ["1"]
    assert [o["external_id"] for o in data["orders"]] == ["213"]
    assert SyncActivity.objects.filter(event="tiendanube.data_export_downloaded", connection=conn).exists()


def test_customers_redact_example_anonymises_customer_and_orders(store123):
    sb, conn = store123
    r = send(sb, URLS["customers/redact"], fixture_bytes("lgpd_customers_redact", store_id_as_string=True))
    assert r.status_code == 200 and r.json()["detail"] == "customer redacted"
    customer = Customer.objects.get(connection=conn, external_id="1")
    assert customer.email == "" and customer.first_name == "" and customer.deleted_at is not None
    order = Order.objects.get(connection=conn, external_id="213")
    assert order.email == "" and order.extra == {"redacted": True}
    assert PrivacyRequest.objects.get(event="customers/redact").request["orders_to_redact"] == ["213", "3415", "21515"]


def test_store_redact_example_refused_while_installed_applied_after_uninstall(store123):
    sb, conn = store123
    body = fixture_bytes("lgpd_store_redact")
    r = send(sb, URLS["store/redact"], body)
    assert r.status_code == 200 and r.json()["detail"].startswith("refused")
    assert Customer.objects.filter(connection=conn).exists() and Connection.objects.get(pk=conn.pk).is_active
    sb.uninstall(STORE)
    r = send(sb, URLS["store/redact"], fixture_bytes("lgpd_store_redact", store_id_as_string=True))
    assert r.status_code == 200 and r.json()["detail"] == "store redacted"
    assert not Customer.objects.filter(connection=conn).exists()
    assert not Connection.objects.get(pk=conn.pk).has_credentials
    assert list(PrivacyRequest.objects.order_by("pk").values_list("outcome", flat=True)) == ["refused", "applied"]


@pytest.mark.parametrize("name", ["lgpd_store_redact", "lgpd_customers_redact", "lgpd_customers_data_request"])
def test_lgpd_bodies_on_the_combined_url_are_400_not_misread(store123, name):
    """No ``event`` key: only their own URLs know what they are."""
    sb, _ = store123
    assert send(sb, BASE, fixture_bytes(name)).status_code == 400


def test_an_lgpd_body_on_another_events_url_is_refused(store123):
    sb, conn = store123
    body = json.dumps({"store_id": 123, "event": "customers/redact", "customer": {"id": 1}}).encode()
    assert send(sb, URLS["customers/data_request"], body).status_code == 400
    assert Customer.objects.get(connection=conn, external_id="1").email != ""


def test_lgpd_urls_check_the_signature(store123):
    sb, _ = store123
    for url in URLS.values():
        r = Client().post(url, data=fixture_bytes("lgpd_store_redact"), content_type="application/json")
        assert r.status_code == 401


# --- the sandbox sends exactly the published shapes -----------------------------------------------------
def test_sandbox_store_event_has_the_published_keys(store123):
    sb, _ = store123
    body, _ = sb.webhook(STORE, "product/created", 1948209)
    assert json.loads(body) == vendor_fixtures.load("tiendanube", "webhook_product_created")


@pytest.mark.parametrize(
    ("event", "name"),
    [
        ("store/redact", "lgpd_store_redact"),
        ("customers/redact", "lgpd_customers_redact"),
        ("customers/data_request", "lgpd_customers_data_request"),
    ],
)
def test_sandbox_lgpd_bodies_have_the_published_keys_and_no_event(store123, event, name):
    sb, _ = store123
    body, headers = sb.lgpd_webhook(event, STORE, customer_id=1, orders=[213])
    payload, published = json.loads(body), vendor_fixtures.load("tiendanube", name)
    assert "event" not in payload
    assert list(payload) == list(published)
    if "customer" in published:
        assert list(payload["customer"]) == list(published["customer"])
    assert headers["X-Linkedstore-HMAC-SHA256"] == sb.sign(body)
    with pytest.raises(ValueError):
        sb.webhook(STORE, event, 1)


def test_sandbox_lgpd_deliveries_reach_their_urls(store123):
    """End to end through the views: the sandbox's own LGPD bodies are handled at the documented URLs."""
    sb, conn = store123
    body, _ = sb.lgpd_webhook("customers/data_request", STORE, customer_id=1, orders=[213], data_request_id=7)
    assert send(sb, URLS["customers/data_request"], body).json()["detail"] == "data request recorded"
    assert send(sb, URLS["customers/data_request"], body).json()["detail"].startswith("duplicate")
    body, _ = sb.lgpd_webhook("customers/redact", STORE, customer_id=1, orders=[213])
    assert send(sb, URLS["customers/redact"], body).json()["detail"] == "customer redacted"
    sb.uninstall(STORE)
    body, _ = sb.lgpd_webhook("store/redact", STORE)
    assert send(sb, URLS["store/redact"], body).json()["detail"] == "store redacted"
