"""Webhook receiving: verify, deduplicate, turn into queue lines. The view only translates the result.

WooCommerce facts (upstream-apis.md §1): ``X-WC-Webhook-Signature`` is base64 of the raw HMAC-SHA256 of
the exact body bytes keyed with the webhook secret; creating a webhook sends a form post
``webhook_id=<id>`` with no X-WC headers that must get exactly 200; deliveries can repeat (same
``X-WC-Webhook-Delivery-ID``); ``*.deleted`` bodies are only ``{"id": N}``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from django.core.cache import cache
from django.db import IntegrityError, transaction

from core import clock
from core.bodies import BodyRejected, parse_json
from core.errors import error_body
from sync.activity import activity_record
from sync.models import ActivityLevel, Origin
from sync.services import enqueue_queue, sync_enqueue_records

from . import conf, selectors
from .models import WebhookDelivery

log = logging.getLogger(__name__)

TOPIC_RESOURCES = {"customer": "customers", "order": "orders", "product": "products"}
UPSERT_EVENTS = {"created", "updated", "restored"}


@dataclass(frozen=True)
class WebhookResult:
    status: int
    body: dict = field(default_factory=dict)


def signature_for(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def signature_valid(body: bytes, secret: str, signature: str) -> bool:
    return bool(secret) and hmac.compare_digest(signature_for(body, secret).encode(), signature.strip().encode())


def _ping_id(body: bytes) -> str | None:
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    values = form.get("webhook_id") or []
    return values[0] if len(form) == 1 and values and values[0].isdigit() else None


def _record_id(payload) -> int | None:
    if not isinstance(payload, dict):
        return None
    value = payload.get("id")
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 and str(number) == str(value).strip() else None


def _error(status: int, code: str, message: str) -> WebhookResult:
    return WebhookResult(status, error_body(code, message))


def ping_receive(*, connection, webhook_id: str) -> WebhookResult:
    """An unsigned creation ping. Anyone who can guess a connection id can send one, so pings are
    deduplicated (one record per webhook_id and window) and rate-limited per connection: past
    ``WOOCOMMERCE_PING_LIMIT`` distinct pings in a window nothing more is written. Every well-formed ping
    still gets exactly 200, because a refused ping makes WooCommerce refuse to create the webhook, so a
    429 would let a flood block the store owner's genuine webhook. The cost of a ping past the limit is
    one counter update in the shared cache."""
    window = int(clock.now().timestamp()) // conf.PING_WINDOW_SECONDS
    counter = f"synchub:woo:pings:{connection.pk}:{window}"
    ok = WebhookResult(200, {"ok": True, "webhook_id": webhook_id})
    cache.add(counter, 0, timeout=conf.PING_WINDOW_SECONDS * 2)
    try:
        seen = cache.incr(counter)
    except ValueError:  # evicted between add and incr
        seen = 1
    if seen > conf.PING_LIMIT:
        if seen == conf.PING_LIMIT + 1:
            log.warning("woocommerce connection %s: ping limit reached; further pings are not recorded", connection.pk)
        return ok
    if not cache.add(f"synchub:woo:ping:{connection.pk}:{window}:{webhook_id}", 1, timeout=conf.PING_WINDOW_SECONDS):
        return WebhookResult(200, {"ok": True, "webhook_id": webhook_id, "duplicate": True})
    activity_record(event="webhook.ping", connection=connection, message=f"WooCommerce webhook {webhook_id} created")
    return ok


def webhook_receive(*, connection_id: int, body: bytes, headers: Mapping[str, str]) -> WebhookResult:
    """Handle one delivery. Never raises for bad input: 404 unknown connection, 200 ping, 401 bad or
    missing signature, 400 malformed, 200 duplicate or ignored topic, 200 queued."""
    connection = selectors.webhook_connection(connection_id)
    if connection is None:
        return _error(404, "not_found", "Unknown webhook endpoint.")
    if len(body) > conf.WEBHOOK_MAX_BODY:
        return _error(413, "payload_too_large", f"The body is larger than {conf.WEBHOOK_MAX_BODY} bytes.")
    signature = headers.get("X-WC-Webhook-Signature") or ""
    if not signature:
        ping = _ping_id(body) if len(body) <= 64 else None  # "webhook_id=<digits>" is short
        if ping is not None:
            return ping_receive(connection=connection, webhook_id=ping[:20])
        return _error(401, "not_authenticated", "Missing X-WC-Webhook-Signature.")
    if not signature_valid(body, connection.credentials.get("webhook_secret", ""), signature):
        activity_record(
            event="webhook.rejected",
            connection=connection,
            level=ActivityLevel.WARNING,
            message="webhook with an invalid signature rejected",
            data={"topic": (headers.get("X-WC-Webhook-Topic") or "")[:64]},
        )
        return _error(401, "authentication_failed", "Invalid X-WC-Webhook-Signature.")

    topic = (headers.get("X-WC-Webhook-Topic") or "").strip()
    subject, _, event = topic.partition(".")
    if not subject or not event:
        return _error(400, "invalid", "Missing or malformed X-WC-Webhook-Topic.")
    try:
        # Bounded like every body we accept (core.bodies): a deeply nested signed body is a 400.
        payload = parse_json(body, limit_bytes=conf.WEBHOOK_MAX_BODY)
    except BodyRejected as exc:
        return _error(exc.http_status, exc.code, str(exc))
    record_id = _record_id(payload)
    if record_id is None:
        return _error(400, "invalid", "The body has no valid record id.")
    resource = TOPIC_RESOURCES.get(subject)
    if resource is None or (event not in UPSERT_EVENTS and event != "deleted"):
        return WebhookResult(200, {"ok": True, "ignored": topic})  # e.g. coupon.*: acknowledged, not synced

    delivery_id = (headers.get("X-WC-Webhook-Delivery-ID") or "").strip()[:64]
    try:
        with transaction.atomic():
            if delivery_id:
                WebhookDelivery.objects.create(
                    connection=connection,
                    delivery_id=delivery_id,
                    topic=topic[:64],
                    webhook_id=(headers.get("X-WC-Webhook-ID") or "")[:32],
                    received_at=clock.now(),
                )
            deleted = event == "deleted"
            queue = sync_enqueue_records(
                connection=connection,
                resource=resource,
                records=[{"id": record_id} if deleted else payload],
                origin=Origin.WEBHOOK,
                deleted=deleted,
                enqueue=False,
            )
            # Work happens after commit, in a worker: the receiver answers fast.
            transaction.on_commit(lambda: enqueue_queue(queue.pk))
    except IntegrityError:
        return WebhookResult(200, {"ok": True, "duplicate": delivery_id})
    return WebhookResult(200, {"ok": True, "queue": queue.pk})


def webhook_deliveries_purge(days: int | None = None) -> int:
    """Forget deliveries older than the dedupe window (WooCommerce stops retrying after ~2 days)."""
    cutoff = clock.now() - dt.timedelta(days=conf.WEBHOOK_DEDUPE_DAYS if days is None else days)
    deleted, _ = WebhookDelivery.objects.filter(received_at__lt=cutoff).delete()
    return deleted
