"""Webhooks Tiendanube sends us: signature check, dedupe, record changes (fetched by id onto the webhook
lane), app lifecycle (uninstalled / suspended) and the LGPD privacy events (handled in privacy.py).

Store events arrive on one URL with ``{"store_id", "event", "id"}``. The LGPD events are configured each
to its own URL in the partner portal and their bodies carry no ``event`` key, so for those the URL names
the event (``webhook_handle(event=...)``). Every delivery is a hint (docs/engine.md, "Webhook rules"):
records are re-fetched by id, ``app/uninstalled`` and ``store/redact`` act only once the store confirms
that our token is dead."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging

from django.db import IntegrityError, transaction
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
from .models import Tier, WebhookReceipt
from .selectors import KIND

log = logging.getLogger(__name__)

# The LGPD events, each posted to its own URL (urls.py) with a body without an ``event`` key.
PRIVACY_EVENTS = ("store/redact", "customers/redact", "customers/data_request")


def webhook_verify(body: bytes, signature: str | None) -> None:
    secret = conf.get().client_secret
    if not secret or not signature:
        raise BadSignature("missing signature")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    # Compare bytes: compare_digest raises TypeError on a str with non-ASCII characters (a forged header).
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise BadSignature("signature does not match")


RESOURCE_FOR_EVENT = {"product": "products", "order": "orders", "customer": "customers"}


def _store_id(payload: dict) -> str:
    """``store_id`` as a number or a numeric string (the LGPD testing tool sends a string)."""
    value = payload.get("store_id")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise WebhookRejected("malformed webhook body")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise WebhookRejected("malformed webhook body") from None
    if number <= 0:
        raise WebhookRejected("malformed webhook body")
    return str(number)


def _parse(body: bytes, event: str | None) -> tuple[dict, str, str]:
    try:
        payload = parse_json(body)  # bounded in size and depth (core.bodies): deep nesting is a 400, not a 503
    except ValueError:  # core.bodies.BodyRejected is a ValueError
        raise WebhookRejected("malformed webhook body") from None
    if not isinstance(payload, dict):
        raise WebhookRejected("malformed webhook body")
    store_id = _store_id(payload)
    if event is None:
        event = payload.get("event")
        if not isinstance(event, str) or "/" not in event:
            raise WebhookRejected("malformed webhook body")
    elif "event" in payload and payload["event"] != event:
        raise WebhookRejected(f"this URL receives {event} only")
    return payload, store_id, event


def _first_receipt(*, body: bytes, store_id: str, event: str, record_id: str) -> bool:
    """Remember this delivery; False if the same signed body arrived within the dedupe window."""
    now = clock.now()
    body_hash = hashlib.sha256(body).hexdigest()
    try:
        with transaction.atomic():
            WebhookReceipt.objects.create(
                body_hash=body_hash, store_id=store_id, event=event[:40], record_id=record_id[:64], received_at=now
            )
        return True
    except IntegrityError:
        # Seen before: a duplicate unless that was before the window (then this delivery takes the row over).
        cutoff = now - dt.timedelta(seconds=conf.get().webhook_dedupe_seconds)
        return WebhookReceipt.objects.filter(body_hash=body_hash, received_at__lt=cutoff).update(received_at=now) == 1


def webhook_handle(*, body: bytes, signature: str | None, event: str | None = None) -> str:
    """Verify, parse, deduplicate and act on one delivery. ``event`` is given by the LGPD URLs (their
    bodies have none). Raises WebhookRejected (401/400) and StoreCheckFailed (the view's 503); returns
    what was done. Everything it records commits together, so a delivery we fail on is not remembered
    and Tiendanube's redelivery is acted on."""
    webhook_verify(body, signature)
    payload, store_id, event = _parse(body, event)
    conn = Connection.objects.filter(kind=KIND, external_account_id=store_id).first()
    record_id = str(payload.get("id") if payload.get("id") is not None else "")
    # Confirmations that need the store's answer are asked before the transaction opens (no HTTP inside it).
    installed = None
    if event in ("store/redact", "app/uninstalled") and conn is not None:
        installed = privacy.store_installed(conn)
    with transaction.atomic():
        if not _first_receipt(body=body, store_id=store_id, event=event, record_id=record_id):
            activity_record(
                event="tiendanube.webhook_duplicate",
                connection=conn,
                message=f"{event} for store {store_id} already received: dropped",
                data={"event": event, "id": record_id},
            )
            return "duplicate: already received"
        return _act(event=event, store_id=store_id, payload=payload, conn=conn, installed=installed)


def _act(*, event: str, store_id: str, payload: dict, conn: Connection | None, installed: bool | None) -> str:
    if event == "store/redact":
        return privacy.privacy_store_redact(store_id=store_id, connection=conn, installed=bool(installed))
    if conn is None:
        log.info("tiendanube webhook %s for unknown store %s ignored", event, store_id)
        return "ignored: unknown store"
    if event == "customers/redact":
        return privacy.privacy_customer_redact(connection=conn, payload=payload)
    if event == "customers/data_request":
        return privacy.privacy_data_request(connection=conn, payload=payload)
    if event == "app/uninstalled":
        if installed:
            activity_record(
                event="tiendanube.uninstall_not_confirmed",
                connection=conn,
                level=ActivityLevel.WARNING,
                message="app/uninstalled received but the store still accepts our token: a stale or replayed delivery; ignored",
            )
            return "ignored: the store still accepts our token"
        stores.store_disconnect(connection=conn, reason="the app was uninstalled from the store")
        return "disconnected"
    if event == "app/suspended":
        stores.store_mark_needs_reauth(conn, reason="the app was suspended for this store")
        return "paused"
    if event == "app/resumed":
        return "noted: reconnect the store to resume"
    topic, _ = event.split("/", 1)
    resource = RESOURCE_FOR_EVENT.get(topic)
    if resource is None:
        return "ignored: unhandled event"
    try:
        record_id = int(payload["id"])
    except (KeyError, TypeError, ValueError):
        raise WebhookRejected("webhook has no record id") from None
    # A change upstream: the store is busy again (high tier from its next sync on).
    RunSchedule.objects.filter(connection=conn, resource="").update(last_activity_at=clock.now(), tier=Tier.HIGH)
    # Every record event, "deleted" included, is a request to re-fetch that id: the store's 404 is what
    # marks a row deleted (fetch_record), never the delivery alone.
    conn_id = conn.pk
    transaction.on_commit(
        lambda: async_task(
            "connectors.tiendanube.tasks.fetch_record", conn_id, resource, record_id, group="tiendanube-webhooks"
        )
    )
    return f"{resource} {record_id} to re-fetch"


def webhook_receipts_purge() -> int:
    """Forget deliveries older than the dedupe window (daily housekeeping)."""
    cutoff = clock.now() - dt.timedelta(seconds=conf.get().webhook_dedupe_seconds)
    deleted, _ = WebhookReceipt.objects.filter(received_at__lt=cutoff).delete()
    return deleted


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
