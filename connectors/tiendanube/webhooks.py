"""Webhooks Tiendanube sends us: signature check, record changes (fetched by id onto the webhook lane),
app lifecycle (uninstalled / suspended) and the LGPD privacy events (handled in privacy.py)."""

from __future__ import annotations

import hashlib
import hmac
import logging

from django.db import transaction
from django_q.tasks import async_task

from connectors.base import UpstreamError
from connectors.models import Connection
from core import clock
from core.bodies import parse_json
from sync import services as sync_services
from sync.activity import activity_record
from sync.models import ActivityLevel, RunSchedule

from . import conf, privacy, stores
from .connector import connector
from .errors import BadSignature, WebhookRejected
from .models import Tier
from .selectors import KIND

log = logging.getLogger(__name__)


def webhook_verify(body: bytes, signature: str | None) -> None:
    secret = conf.get().client_secret
    if not secret or not signature:
        raise BadSignature("missing signature")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    # Compare bytes: compare_digest raises TypeError on a str with non-ASCII characters (a forged header).
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise BadSignature("signature does not match")


RESOURCE_FOR_EVENT = {"product": "products", "order": "orders", "customer": "customers"}


def webhook_handle(*, body: bytes, signature: str | None) -> str:
    """Verify, parse and act on one delivery. Raises WebhookRejected (401/400); returns what was done."""
    webhook_verify(body, signature)
    try:
        payload = parse_json(body)  # bounded in size and depth (core.bodies): deep nesting is a 400, not a 503
        store_id = str(int(payload["store_id"]))
        event = str(payload["event"])
    except (ValueError, KeyError, TypeError):  # core.bodies.BodyRejected is a ValueError
        raise WebhookRejected("malformed webhook body") from None
    if not isinstance(payload, dict) or "/" not in event:
        raise WebhookRejected("malformed webhook body")
    conn = Connection.objects.filter(kind=KIND, external_account_id=store_id).first()
    if event == "store/redact":
        return privacy.privacy_store_redact(store_id=store_id, connection=conn)
    if conn is None:
        log.info("tiendanube webhook %s for unknown store %s ignored", event, store_id)
        return "ignored: unknown store"
    if event == "customers/redact":
        return privacy.privacy_customer_redact(connection=conn, payload=payload)
    if event == "customers/data_request":
        return privacy.privacy_data_request(connection=conn, payload=payload)
    if event == "app/uninstalled":
        stores.store_disconnect(connection=conn, reason="the app was uninstalled from the store")
        return "disconnected"
    if event == "app/suspended":
        stores.store_mark_needs_reauth(conn, reason="the app was suspended for this store")
        return "paused"
    if event == "app/resumed":
        return "noted: reconnect the store to resume"
    topic, action = event.split("/", 1)
    resource = RESOURCE_FOR_EVENT.get(topic)
    if resource is None:
        return "ignored: unhandled event"
    try:
        record_id = int(payload["id"])
    except (KeyError, TypeError, ValueError):
        raise WebhookRejected("webhook has no record id") from None
    # A change upstream: the store is busy again (high tier from its next sync on).
    RunSchedule.objects.filter(connection=conn, resource="").update(last_activity_at=clock.now(), tier=Tier.HIGH)
    if action == "deleted":
        sync_services.sync_enqueue_records(
            connection=conn, resource=resource, records=[{"id": record_id}], deleted=True
        )
        return f"{resource} {record_id} deleted"
    conn_id = conn.pk
    transaction.on_commit(
        lambda: async_task(
            "connectors.tiendanube.tasks.fetch_record", conn_id, resource, record_id, group="tiendanube-webhooks"
        )
    )
    return f"{resource} {record_id} enqueued"


def fetch_record(*, connection_id: int, resource: str, record_id: int) -> str:
    """Fetch one record by id through the client and put it on the webhook lane."""
    conn = Connection.objects.get(pk=connection_id, kind=KIND)
    if conn.needs_reauth or not conn.is_active:
        return "skipped: store needs reconnect"
    client = connector.client(conn)
    try:
        record, _ = client.get_json(f"{connector.resource(resource).path}/{record_id}")
    except UpstreamError as exc:
        if exc.status == 401:
            stores.store_mark_needs_reauth(conn, reason="the token was rejected (401)")
        if exc.status == 404:
            sync_services.sync_enqueue_records(
                connection=conn, resource=resource, records=[{"id": record_id}], deleted=True
            )
            return "gone upstream: marked deleted"
        activity_record(
            event="tiendanube.webhook_fetch_failed",
            connection=conn,
            level=ActivityLevel.ERROR,
            message=f"could not fetch {resource} {record_id}: {exc}",
        )
        return "failed"
    finally:
        client.close()
    sync_services.sync_enqueue_records(connection=conn, resource=resource, records=[record])
    return "enqueued"
