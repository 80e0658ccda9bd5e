import json

import pytest
from django.test import Client
from django_q.models import Schedule

from connectors.models import Connection
from connectors.tiendanube.models import PrivacyRequest
from sync.models import Lane, RunSchedule, ScheduleState, SyncActivity, SyncQueue

pytestmark = pytest.mark.django_db
URL = "/connectors/tiendanube/webhooks/"


def post(body: bytes, signature: str | None):
    headers = {"HTTP_X_LINKEDSTORE_HMAC_SHA256": signature} if signature is not None else {}
    return Client().post(URL, data=body, content_type="application/json", **headers)


@pytest.fixture
def synced(tn_sandbox, store_conn):
    from sync.connection_runs import connection_sync

    sb = tn_sandbox(stores=1, records=4)
    conn = store_conn(sb)
    assert connection_sync(connection_id=conn.pk).outcome == "success"
    return sb, conn


def test_bad_or_missing_signature_is_401(synced):
    sb, _ = synced
    body, headers = sb.webhook("1001", "product/updated", 1)
    assert post(body, None).status_code == 401
    assert post(body, "0" * 64).status_code == 401
    assert post(body + b" ", headers["X-Linkedstore-HMAC-SHA256"]).status_code == 401


def test_non_ascii_signature_is_401_not_500(synced):
    """A header arrives latin-1 decoded; hmac.compare_digest refuses non-ASCII str (TypeError -> 500)."""
    sb, _ = synced
    body, _ = sb.webhook("1001", "product/updated", 1)
    c = Client(raise_request_exception=False)
    r = c.post(URL, data=body, content_type="application/json", HTTP_X_LINKEDSTORE_HMAC_SHA256="é" * 64)
    assert r.status_code == 401


def test_malformed_body_is_400_never_500(synced):
    sb, _ = synced
    for body in (
        b"not json",
        b"[]",
        json.dumps({"event": "product/updated"}).encode(),
        json.dumps({"store_id": "x", "event": "a/b"}).encode(),
    ):
        r = post(body, sb.sign(body))
        assert r.status_code == 400, (body, r.status_code)


def test_uninstall_disconnects_store_and_pauses_schedule(synced):
    sb, conn = synced
    body, headers = sb.webhook("1001", "app/uninstalled", 4242)
    r = post(body, headers["X-Linkedstore-HMAC-SHA256"])
    assert r.status_code == 200 and r.json()["detail"] == "disconnected"
    conn.refresh_from_db()
    assert conn.needs_reauth and not conn.is_active and not conn.has_credentials
    assert RunSchedule.objects.get(connection=conn, resource="").state == ScheduleState.DISCONNECTED
    assert Schedule.objects.get(name=f"tiendanube:{conn.pk}").repeats == 0
    assert SyncActivity.objects.filter(connection=conn, event="tiendanube.disconnected").exists()


def test_record_event_fetches_record_into_webhook_lane(synced, django_capture_on_commit_callbacks):
    sb, conn = synced
    pid = 1001 * 100_000 + 3
    import datetime as dt

    sb.touch("1001", "products", pid, dt.datetime(2026, 1, 2, tzinfo=dt.UTC), name={"es": "Pushed name"})
    body, headers = sb.webhook("1001", "product/updated", pid)
    with django_capture_on_commit_callbacks(execute=True):
        r = post(body, headers["X-Linkedstore-HMAC-SHA256"])
    assert r.status_code == 200
    q = SyncQueue.objects.get(connection=conn, lane=Lane.WEBHOOK, resource="products")
    assert q.done_count == 1
    from commerce.models import Product

    assert Product.objects.get(connection=conn, external_id=str(pid)).name == "Pushed name"


def test_deleted_event_marks_record_deleted(synced, django_capture_on_commit_callbacks):
    sb, conn = synced
    cid = 1001 * 100_000 + 1
    body, headers = sb.webhook("1001", "customer/deleted", cid)
    with django_capture_on_commit_callbacks(execute=True):
        assert post(body, headers["X-Linkedstore-HMAC-SHA256"]).status_code == 200
    from customers.models import Customer

    assert Customer.objects.get(connection=conn, external_id=str(cid)).deleted_at is not None


def test_customer_redact_and_data_request(synced):
    sb, conn = synced
    cid = 1001 * 100_000 + 2
    body, headers = sb.webhook("1001", "customers/data_request", None, customer={"id": cid}, data_request={"id": 9})
    assert post(body, headers["X-Linkedstore-HMAC-SHA256"]).status_code == 200
    req = PrivacyRequest.objects.get(event="customers/data_request")
    assert req.result["customer"][0]["email"] == "cliente2@store1001.example" and len(req.result["orders"]) == 1
    body, headers = sb.webhook("1001", "customers/redact", None, customer={"id": cid}, orders_to_redact=[cid])
    assert post(body, headers["X-Linkedstore-HMAC-SHA256"]).status_code == 200
    from commerce.models import Order
    from customers.models import Customer

    c = Customer.objects.get(connection=conn, external_id=str(cid))
    assert c.email == "" and c.first_name == "" and c.phone == ""
    assert Order.objects.get(connection=conn, external_id=str(cid)).email == ""
    assert SyncActivity.objects.filter(event="tiendanube.customer_redacted", connection=conn).exists()


def test_store_redact_deletes_local_data(synced):
    sb, conn = synced
    body, headers = sb.webhook("1001", "store/redact", None)
    assert post(body, headers["X-Linkedstore-HMAC-SHA256"]).status_code == 200
    from commerce.models import Order, Product
    from customers.models import Customer

    for model in (Product, Order, Customer):
        assert not model.objects.filter(connection=conn).exists()
    assert not Connection.objects.get(pk=conn.pk).is_active
    assert PrivacyRequest.objects.filter(event="store/redact", store_id="1001").exists()


def test_unknown_store_is_acknowledged(synced):
    sb, _ = synced
    body, headers = sb.webhook("9999", "product/updated", 1)
    r = post(body, headers["X-Linkedstore-HMAC-SHA256"])
    assert r.status_code == 200 and "ignored" in r.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_sandbox_sends_uninstall_webhook_then_api_answers_401(synced, live_server):
    sb, conn = synced
    r = sb.uninstall("1001", webhook_url=live_server.url + URL)
    assert r.status_code == 200
    conn.refresh_from_db()
    assert conn.needs_reauth
    from connectors.tiendanube import health

    assert (
        health.token_diagnose(
            Connection(pk=conn.pk, kind="tiendanube", base_url=conn.base_url, external_account_id="1001")
        )["has_token"]
        is False
    )


def test_a_delivery_we_fail_to_act_on_is_a_503_so_tiendanube_redelivers(synced, monkeypatch):
    from connectors.tiendanube import webhooks
    from sync import services as sync_services

    sb, conn = synced
    cid = 1001 * 100_000 + 1
    body, headers = sb.webhook("1001", "customer/deleted", cid)

    def database_down(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(sync_services, "sync_enqueue_records", database_down)
    r = post(body, headers["X-Linkedstore-HMAC-SHA256"])
    assert r.status_code == 503 and r["Retry-After"] == "60"
    assert r.json()["error"]["code"] == "webhook_not_processed"  # the one error shape (issue 17)
    monkeypatch.undo()
    assert webhooks.webhook_handle(body=body, signature=headers["X-Linkedstore-HMAC-SHA256"]).endswith("deleted")
