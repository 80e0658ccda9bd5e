import datetime as dt
import json

import pytest
from django.test import Client

from connectors.models import Connection
from connectors.tiendanube.models import PrivacyRequest
from core import clock
from sync.models import Lane, RunSchedule, ScheduleState, SyncActivity, SyncQueue
from sync.scheduler import due_units

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
    sb.uninstall("1001")  # the token dies first: the store confirms the uninstall with a 401
    body, headers = sb.webhook("1001", "app/uninstalled", 4242)
    r = post(body, headers["X-Linkedstore-HMAC-SHA256"])
    assert r.status_code == 200 and r.json()["detail"] == "disconnected"
    conn.refresh_from_db()
    assert conn.needs_reauth and not conn.is_active and not conn.has_credentials
    assert RunSchedule.objects.get(connection=conn, resource="").state == ScheduleState.DISCONNECTED
    # Paused: the fleet tick (sync.scheduler) never enqueues it (no per-store Schedule since the tick).
    assert not due_units("tiendanube", now=clock.now() + dt.timedelta(days=30)).filter(connection=conn).exists()
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
    sb.remove("1001", "customers", cid)  # GET by id answers 404: the store confirms the delete
    body, headers = sb.webhook("1001", "customer/deleted", cid)
    with django_capture_on_commit_callbacks(execute=True):
        assert post(body, headers["X-Linkedstore-HMAC-SHA256"]).status_code == 200
    from customers.models import Customer

    assert Customer.objects.get(connection=conn, external_id=str(cid)).deleted_at is not None


def test_deleted_event_for_a_record_the_store_still_has_deletes_nothing(synced, django_capture_on_commit_callbacks):
    sb, conn = synced
    cid = 1001 * 100_000 + 1
    body, headers = sb.webhook("1001", "customer/deleted", cid)
    with django_capture_on_commit_callbacks(execute=True):
        assert post(body, headers["X-Linkedstore-HMAC-SHA256"]).status_code == 200
    from customers.models import Customer

    assert Customer.objects.get(connection=conn, external_id=str(cid)).deleted_at is None


def test_the_same_delivery_twice_is_enqueued_once(synced, django_capture_on_commit_callbacks, fake_clock):
    from connectors.tiendanube.models import WebhookReceipt
    from sync.models import SyncQueueLine

    sb, conn = synced
    pid = 1001 * 100_000 + 2
    body, headers = sb.webhook("1001", "product/updated", pid)
    pushed = SyncActivity.objects.filter(event="webhook.received", connection=conn)  # one per re-fetch enqueued
    with django_capture_on_commit_callbacks(execute=True):
        assert post(body, headers["X-Linkedstore-HMAC-SHA256"]).json()["detail"].endswith("to re-fetch")
        assert post(body, headers["X-Linkedstore-HMAC-SHA256"]).json()["detail"].startswith("duplicate")
    assert pushed.count() == 1
    assert SyncQueueLine.objects.filter(queue__lane=Lane.WEBHOOK, external_id=str(pid)).count() == 1
    assert SyncActivity.objects.filter(event="tiendanube.webhook_duplicate", connection=conn).count() == 1
    fake_clock.advance(901)  # past TIENDANUBE_WEBHOOK_DEDUPE_SECONDS: a new change of the same record
    with django_capture_on_commit_callbacks(execute=True):
        assert post(body, headers["X-Linkedstore-HMAC-SHA256"]).json()["detail"].endswith("to re-fetch")
    assert pushed.count() == 2
    from connectors.tiendanube.webhooks import webhook_receipts_purge

    fake_clock.advance(901)
    assert webhook_receipts_purge() == 1 and not WebhookReceipt.objects.exists()


def test_customer_redact_and_data_request(synced):
    """Old-style bodies carrying an "event" key still work on the combined URL."""
    sb, conn = synced
    cid = 1001 * 100_000 + 2
    for event, extra in (
        ("customers/data_request", {"data_request": {"id": 9}}),
        ("customers/redact", {"orders_to_redact": [cid]}),
    ):
        body = json.dumps({"store_id": 1001, "event": event, "customer": {"id": cid}, **extra}).encode()
        assert post(body, sb.sign(body)).status_code == 200
    req = PrivacyRequest.objects.get(event="customers/data_request")
    assert req.result["held"] == {"customers": 1, "orders": 1} and req.request["data_request_id"] == "9"
    from commerce.models import Order
    from customers.models import Customer

    c = Customer.objects.get(connection=conn, external_id=str(cid))
    assert c.email == "" and c.first_name == "" and c.phone == ""
    assert Order.objects.get(connection=conn, external_id=str(cid)).email == ""
    assert SyncActivity.objects.filter(event="tiendanube.customer_redacted", connection=conn).exists()


def _uninstall_and_store_redact(sb):
    """The merchant uninstalls store 1001; 48 h later Tiendanube sends store/redact, which we apply."""
    sb.uninstall("1001")
    body, headers = sb.lgpd_webhook("store/redact", "1001")
    r = Client().post(
        URL + "store-redact/",
        data=body,
        content_type="application/json",
        HTTP_X_LINKEDSTORE_HMAC_SHA256=headers["X-Linkedstore-HMAC-SHA256"],
    )
    assert r.status_code == 200 and r.json()["detail"] == "store redacted"


def test_store_redact_deletes_local_data(synced):
    sb, conn = synced
    _uninstall_and_store_redact(sb)
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
    from connectors.tiendanube import privacy, webhooks

    sb, conn = synced
    cid = 1001 * 100_000 + 1
    body, headers = sb.lgpd_webhook("customers/redact", "1001", customer_id=cid, orders=[cid])

    def database_down(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(privacy, "privacy_customer_redact", database_down)
    r = Client().post(
        URL + "customers-redact/",
        data=body,
        content_type="application/json",
        HTTP_X_LINKEDSTORE_HMAC_SHA256=headers["X-Linkedstore-HMAC-SHA256"],
    )
    assert r.status_code == 503 and r["Retry-After"] == "60"
    assert r.json()["error"]["code"] == "webhook_not_processed"  # the one error shape (issue 17)
    monkeypatch.undo()
    # Nothing of the failed attempt was kept (not even its dedupe receipt): the redelivery is acted on.
    done = webhooks.webhook_handle(body=body, signature=headers["X-Linkedstore-HMAC-SHA256"], event="customers/redact")
    assert done == "customer redacted"


def _reinstall(sb, conn, token="tok-1001-reinstalled"):
    st = sb.stores["1001"]
    st.installed, st.token = True, token
    conn.refresh_from_db()
    conn.credentials = {"access_token": token}
    conn.is_active, conn.needs_reauth = True, False
    conn.save()


def _redact(sb, body):
    return Client().post(
        URL + "store-redact/",
        data=body,
        content_type="application/json",
        HTTP_X_LINKEDSTORE_HMAC_SHA256=sb.sign(body),
    )


def test_replayed_store_redact_does_not_wipe_a_store_that_reinstalled(synced, fake_clock):
    from customers.models import Customer
    from sync.connection_runs import connection_sync

    sb, conn = synced
    sb.uninstall("1001")
    body, _ = sb.lgpd_webhook("store/redact", "1001")
    assert _redact(sb, body).json()["detail"] == "store redacted"
    assert not Customer.objects.filter(connection=conn).exists()
    _reinstall(sb, conn)
    assert connection_sync(connection_id=conn.pk).outcome == "success"
    held = Customer.objects.filter(connection=conn).count()
    assert held == 4
    # The captured redact, replayed right away (the dedupe) and days later (the store is connected).
    assert _redact(sb, body).json()["detail"].startswith("duplicate")
    fake_clock.advance(3 * 86400)
    r = _redact(sb, body)
    assert r.status_code == 200 and r.json()["detail"].startswith("refused")
    assert Customer.objects.filter(connection=conn).count() == held
    conn.refresh_from_db()
    assert conn.is_active and conn.has_credentials
    assert SyncActivity.objects.filter(event="tiendanube.store_redact_refused", connection=conn).exists()
    # The next real uninstall, then its redact (the same bytes): applied.
    sb.uninstall("1001")
    fake_clock.advance(2 * 86400)  # store/redact comes 48 h after the uninstall
    assert _redact(sb, body).json()["detail"] == "store redacted"
    assert not Customer.objects.filter(connection=conn).exists()


def test_store_redact_when_the_store_cannot_be_asked_is_a_503(synced, monkeypatch):
    from connectors.base import TransientError
    from connectors.tiendanube.client import TiendanubeClient

    sb, conn = synced

    def unreachable(self, *a, **kw):
        raise TransientError("network error talking to tiendanube: ConnectionError")

    monkeypatch.setattr(TiendanubeClient, "get_json", unreachable)
    body, _ = sb.lgpd_webhook("store/redact", "1001")
    r = _redact(sb, body)
    assert r.status_code == 503 and r["Retry-After"] == "60"
    from customers.models import Customer

    assert Customer.objects.filter(connection=conn).exists()
    assert not PrivacyRequest.objects.exists()


def test_replayed_uninstall_does_not_disconnect_an_installed_store(synced):
    sb, conn = synced
    body, headers = sb.webhook("1001", "app/uninstalled", 4242)
    r = post(body, headers["X-Linkedstore-HMAC-SHA256"])
    assert r.status_code == 200 and r.json()["detail"].startswith("ignored")
    conn.refresh_from_db()
    assert conn.is_active and conn.has_credentials and not conn.needs_reauth
    assert SyncActivity.objects.filter(event="tiendanube.uninstall_not_confirmed", connection=conn).exists()


def _customer_redact(sb, cid: int, orders: list[int]):
    body = json.dumps(
        {"store_id": 1001, "event": "customers/redact", "customer": {"id": cid}, "orders_to_redact": orders}
    )
    assert post(body.encode(), sb.sign(body.encode())).status_code == 200


def _full_scan(conn, resource: str):
    from sync.engine import run_queue
    from sync.services import sync_start

    result = sync_start(connection=conn, resource=resource, enqueue=False, full_scan=True)
    assert run_queue(result.queue.pk) == "done"


def test_a_redacted_customer_stays_erased_when_the_store_still_lists_them(synced, django_capture_on_commit_callbacks):
    """customers/redact erases the customer for good: neither a full scan that still finds them (changed
    since, even) nor a customer/updated webhook writes their data back, and the same holds for the orders
    named in the redact. The other customers still sync."""
    from commerce.models import Order
    from customers.models import Customer

    sb, conn = synced
    cid, other = 1001 * 100_000 + 2, 1001 * 100_000 + 3
    _customer_redact(sb, cid, [cid])
    later = dt.datetime(2027, 1, 2, tzinfo=dt.UTC)
    sb.touch("1001", "customers", cid, later, name="Still Listed", email="still@listed.example")
    sb.touch("1001", "customers", other, later, name="Renamed Other")
    sb.touch("1001", "orders", cid, later, contact_email="still@listed.example")
    _full_scan(conn, "customers")
    _full_scan(conn, "orders")
    body, headers = sb.webhook("1001", "customer/updated", cid)
    with django_capture_on_commit_callbacks(execute=True):
        assert post(body, headers["X-Linkedstore-HMAC-SHA256"]).status_code == 200
    c = Customer.objects.get(connection=conn, external_id=str(cid))
    assert (c.first_name, c.last_name, c.email, c.extra) == ("", "", "", {"redacted": True})
    assert c.deleted_at is not None
    order = Order.objects.get(connection=conn, external_id=str(cid))
    assert (order.email, order.customer_external_id, order.extra) == ("", "", {"redacted": True})
    assert "still@listed.example" not in json.dumps(
        list(Customer.objects.filter(connection=conn).values()) + list(Order.objects.filter(connection=conn).values()),
        default=str,
    )
    renamed = Customer.objects.get(connection=conn, external_id=str(other))
    assert "Renamed Other" in f"{renamed.first_name} {renamed.last_name}"


def test_a_redact_before_the_first_sync_keeps_the_customer_out(tn_sandbox, store_conn):
    """A redact for a customer (and an order) we never synced leaves sealed, empty rows: the first import
    does not bring them in; the store's other records arrive as usual."""
    from commerce.models import Order
    from customers.models import Customer
    from sync.connection_runs import connection_sync

    sb = tn_sandbox(stores=1, records=4)
    conn = store_conn(sb)
    cid = 1001 * 100_000 + 2
    _customer_redact(sb, cid, [cid])
    assert connection_sync(connection_id=conn.pk).outcome == "success"
    c = Customer.objects.get(connection=conn, external_id=str(cid))
    assert (c.email, c.first_name, c.deleted_at is not None) == ("", "", True)
    assert Order.objects.get(connection=conn, external_id=str(cid)).email == ""
    assert Customer.objects.filter(connection=conn, deleted_at__isnull=True).count() == 3
    assert Order.objects.filter(connection=conn).exclude(email="").count() == 3
    # A data request for them finds nothing of theirs: the sealed blank row is not "held" data.
    body = json.dumps({"store_id": 1001, "event": "customers/data_request", "customer": {"id": cid}}).encode()
    assert post(body, sb.sign(body)).status_code == 200
    assert PrivacyRequest.objects.get(event="customers/data_request").result["held"]["customers"] == 0


def test_a_store_redact_keeps_the_seals_so_a_reinstall_does_not_bring_erased_customers_back(synced):
    """store/redact deletes the store's data but not the blank, sealed rows of customers erased on request:
    when the store installs the app again (the same connection, store_connect), its first sync leaves them
    erased while the store still lists them."""
    from commerce.models import Order, Product
    from connectors.tiendanube.oauth import store_connect
    from customers.models import Customer
    from sync.connection_runs import connection_sync

    sb, conn = synced
    cid = 1001 * 100_000 + 2
    _customer_redact(sb, cid, [cid])
    _uninstall_and_store_redact(sb)
    assert not Product.objects.filter(connection=conn).exists()
    assert list(Customer.objects.filter(connection=conn).values_list("external_id", "email")) == [(str(cid), "")]
    assert list(Order.objects.filter(connection=conn).values_list("external_id", "email")) == [(str(cid), "")]
    st = sb.stores["1001"]
    st.installed, st.token = True, "tok-1001-again"
    store_connect(organization=conn.organization, store_id="1001", access_token=st.token)
    assert connection_sync(connection_id=conn.pk).outcome == "success"
    assert Customer.objects.filter(connection=conn, deleted_at__isnull=True).count() == 3
    erased = Customer.objects.get(connection=conn, external_id=str(cid))
    assert (erased.email, erased.first_name, erased.deleted_at is not None) == ("", "", True)
    assert Order.objects.get(connection=conn, external_id=str(cid)).email == ""
