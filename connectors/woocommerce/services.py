"""Webhook receiving: verify, deduplicate, and treat every delivery as a hint to re-fetch one record.

WooCommerce facts (upstream-apis.md §1): ``X-WC-Webhook-Signature`` is base64 of the raw HMAC-SHA256 of
the exact body bytes keyed with the webhook secret; creating a webhook sends a form post
``webhook_id=<id>`` with no X-WC headers that must get exactly 200; ``*.deleted`` bodies are only
``{"id": N}``; more than 5 consecutive non-2xx answers disable the webhook.

Only the body is signed. The ``X-WC-Webhook-Topic``, ``-Resource``, ``-Event`` and ``-Delivery-ID`` headers
can be changed by whoever replays a captured body, so none of them decides what we do (docs/engine.md,
"Webhook rules"):
- a delivery is a duplicate if its delivery id **or** the SHA-256 of its body (per resource) was seen
  within ``WOOCOMMERCE_WEBHOOK_DEDUPE_DAYS``: answered 200, recorded as ``webhook.duplicate``, nothing
  else (models.WebhookDelivery says when an older body stops counting);
- otherwise it only says "record N of this resource may have changed": a worker GETs that record and
  stores what the store answers now. A 404 with WooCommerce's ``*_invalid_id`` code, or a record in the
  trash, is the store's confirmation of a delete; a topic header saying "deleted" is not. So a replayed
  old body cannot overwrite newer data and a ``customer.updated`` body relabelled ``customer.deleted``
  deletes nothing.
- a signed delivery we cannot use (``action.*``, an unknown topic, a body without an ``id``) gets 200 and
  a ``webhook.ignored`` activity row: a non-2xx would only count towards WooCommerce disabling the hook.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django_q.tasks import async_task

from connectors.base import UpstreamError
from connectors.models import Connection
from core import clock
from core.bodies import BodyRejected, BodyTooDeep, BodyTooLarge, parse_json
from core.errors import error_body
from sync.activity import activity_record
from sync.models import ActivityLevel
from sync.services import sync_enqueue_records

from . import conf, selectors
from .models import WebhookDelivery

log = logging.getLogger(__name__)

TOPIC_RESOURCES = {"customer": "customers", "order": "orders", "product": "products", "coupon": "coupons"}
ENDPOINT_RESOURCES = {v: v for v in TOPIC_RESOURCES.values()}
HINT_EVENTS = {"created", "updated", "restored", "deleted"}
# WooCommerce's "no such record" codes (woocommerce_rest_invalid_id, ..._shop_order_invalid_id,
# ..._product_invalid_id, ..._shop_coupon_invalid_id). A bare 404 (rest_no_route: wrong URL, plugin off)
# is not a confirmation that a record is gone.
_GONE_CODE = re.compile(r"\bwoocommerce_rest_[a-z_]*invalid_id\b")


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


def _self_resource(payload: dict) -> str | None:
    """The resource named by the signed body's own ``_links.self`` (present on v3 GET bodies), if any."""
    try:
        href = payload["_links"]["self"][0]["href"]
        parts = urlsplit(str(href)).path.rstrip("/").split("/")
        return ENDPOINT_RESOURCES.get(parts[-2])
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def _ignored(connection, reason: str, topic: str, delivery_id: str) -> WebhookResult:
    activity_record(
        event="webhook.ignored",
        connection=connection,
        message=f"WooCommerce webhook acknowledged, nothing to sync: {reason}",
        data={"topic": topic[:64], "delivery_id": delivery_id, "reason": reason},
    )
    return WebhookResult(200, {"ok": True, "ignored": topic or reason})


def _remember(connection, *, delivery_id: str, body_hash: str, resource: str, topic: str, headers, record_id) -> bool:
    """Record this delivery; False if its delivery id, or its body for this resource, was already seen
    within the window."""
    now = clock.now()
    cutoff = now - dt.timedelta(days=conf.WEBHOOK_DEDUPE_DAYS)
    keys = Q(resource=resource, body_hash=body_hash) | (Q(delivery_id=delivery_id) if delivery_id else Q(pk__in=[]))
    try:
        with transaction.atomic():
            # Rows past the window do not count even before the daily purge removes them.
            WebhookDelivery.objects.filter(keys, connection=connection, received_at__lt=cutoff).delete()
            row = WebhookDelivery.objects.create(
                connection=connection,
                delivery_id=delivery_id,
                body_hash=body_hash,
                resource=resource,
                topic=topic[:64],
                webhook_id=(headers.get("X-WC-Webhook-ID") or "")[:32],
                record_id=str(record_id or "")[:32],
                outcome="refetch" if record_id and resource else "ignored",
                received_at=now,
            )
    except IntegrityError:
        return False
    if record_id and resource:
        # A newer body for this record: its older bodies stop counting as replays (see the model).
        WebhookDelivery.objects.filter(connection=connection, resource=resource, record_id=str(record_id)).exclude(
            pk=row.pk
        ).update(body_hash="")
    return True


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
    missing signature; every signed delivery gets 200 (queued as a re-fetch, duplicate, or ignored)."""
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

    # Signed from here on. The headers below are unsigned: they name a resource, never an action.
    topic = (headers.get("X-WC-Webhook-Topic") or "").strip()[:64]
    delivery_id = (headers.get("X-WC-Webhook-Delivery-ID") or "").strip()[:64]
    body_hash = hashlib.sha256(body).hexdigest()
    try:
        # Bounded like every body we accept (core.bodies): too large or too deep is a 4xx; a body that is
        # merely not JSON is acknowledged below (a non-2xx pushes WooCommerce towards disabling the webhook).
        payload = parse_json(body, limit_bytes=conf.WEBHOOK_MAX_BODY)
    except (BodyTooLarge, BodyTooDeep) as exc:
        return _error(exc.http_status, exc.code, str(exc))
    except BodyRejected:
        payload = None
    record_id = _record_id(payload)
    subject, _, event = topic.partition(".")
    resource = TOPIC_RESOURCES.get(subject) if event in HINT_EVENTS else None
    if record_id is not None and isinstance(payload, dict):
        named = _self_resource(payload)
        if named is not None and resource is not None and named != resource:
            log.warning("woocommerce webhook: topic %s but the signed body is a %s record", topic, named)
        resource = named or resource
    if record_id is None:
        reason = "body is not a JSON record with an id" if not topic.startswith("action.") else "action topic"
    elif resource is None:
        reason = f"topic {topic or '(none)'} is not synced"
    else:
        reason = ""
    if not _remember(
        connection,
        delivery_id=delivery_id,
        body_hash=body_hash,
        resource="" if reason else resource,
        topic=topic,
        headers=headers,
        record_id=None if reason else record_id,
    ):
        activity_record(
            event="webhook.duplicate",
            connection=connection,
            message="WooCommerce webhook already received (same delivery id or same signed body): dropped",
            data={"topic": topic, "delivery_id": delivery_id, "record_id": record_id},
        )
        return WebhookResult(200, {"ok": True, "duplicate": delivery_id or body_hash[:16]})
    if reason:
        return _ignored(connection, reason, topic, delivery_id)
    conn_id = connection.pk
    # The GET happens in a worker after commit: the receiver answers fast (WooCommerce waits 60 s at most).
    transaction.on_commit(
        lambda: async_task(
            "connectors.woocommerce.tasks.refetch_record", conn_id, resource, record_id, group="woocommerce-webhooks"
        )
    )
    return WebhookResult(200, {"ok": True, "refetch": {"resource": resource, "id": record_id}})


def webhook_refetch(*, connection_id: int, resource: str, record_id: int) -> str:
    """Ask the store for the record a delivery named and store what it answers now (upsert, or a delete
    when the store confirms it: its ``*_invalid_id`` 404, or a trashed record)."""
    from .connector import connector

    connection = Connection.objects.filter(pk=connection_id, kind="woocommerce", is_active=True).first()
    if connection is None or connection.needs_reauth:
        return "skipped: connection inactive or needs reconnect"
    res = connector.resource(resource)
    client = connector.client(connection)
    try:
        record, _ = client.get_json(f"{res.endpoint}/{record_id}")
    except UpstreamError as exc:
        if getattr(exc, "status", None) == 404 and _GONE_CODE.search(str(exc)):
            sync_enqueue_records(connection=connection, resource=resource, records=[{"id": record_id}], deleted=True)
            return "gone upstream: marked deleted"
        activity_record(
            event="webhook.refetch_failed",
            connection=connection,
            level=ActivityLevel.ERROR,
            message=f"could not re-fetch {resource} {record_id} after a webhook: {exc}"[:500],
            data={"resource": resource, "record_id": record_id, "status": getattr(exc, "status", None)},
        )
        return "failed"
    finally:
        client.close()
    if _record_id(record) != record_id:
        activity_record(
            event="webhook.refetch_failed",
            connection=connection,
            level=ActivityLevel.ERROR,
            message=f"re-fetching {resource} {record_id} returned another record or no record",
            data={"resource": resource, "record_id": record_id},
        )
        return "failed"
    # A trashed order/product/coupon becomes a delete line (Resource.is_deleted).
    sync_enqueue_records(connection=connection, resource=resource, records=[record])
    return "deleted (trash)" if res.is_deleted(record) else "enqueued"


def webhook_deliveries_purge(days: int | None = None) -> int:
    """Forget deliveries older than the dedupe window (daily housekeeping)."""
    cutoff = clock.now() - dt.timedelta(days=conf.WEBHOOK_DEDUPE_DAYS if days is None else days)
    deleted, _ = WebhookDelivery.objects.filter(received_at__lt=cutoff).delete()
    return deleted
