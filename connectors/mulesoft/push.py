"""MuleSoft pushes tier changes to us (seed 000's "webhook support"). There is no public MuleSoft standard
for this: the contract is ours (docs/connectors/mulesoft.md).

``POST /connectors/mulesoft/push/<connection id>/`` with
- ``X-SyncHub-Timestamp``: Unix seconds when MuleSoft signed the request;
- ``X-SyncHub-Signature``: ``sha256=`` + hex HMAC-SHA256, keyed with the connection's ``push_secret``, of
  ``<timestamp>.<raw body>`` (the timestamp is signed too, so it cannot be refreshed on a captured body);
- ``X-SyncHub-Delivery-Id`` (optional): MuleSoft's id for the delivery;
- body ``{"tiers": [tier, ...], "deleted": ["id or code", ...]}``, tiers in the shape ``GET /loyalty/tiers`` answers.

Replay rules (docs/engine.md "Webhook rules"): verified first (constant-time), the timestamp within
``MULESOFT_PUSH_TOLERANCE_SECONDS``, deduplicated by delivery id and by body hash (remembered longer than the
window, so a replay is either a duplicate or out of the window), then applied through the engine's webhook
lane (``sync_enqueue_records``). Ordering between two different legitimate pushes of one tier is not
checked here: the engine's versioned upserts decide that once they land; until then the hourly refresh
converges. Every answer uses the API's one error shape."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from connectors.base import MappingError
from connectors.models import Connection
from core import clock
from core.bodies import BodyRejected, parse_json
from core.errors import error_body
from sync.activity import activity_record
from sync.models import ActivityLevel, Origin
from sync.services import enqueue_queue, sync_enqueue_records

from . import conf
from .models import PushDelivery
from .resources import LOYALTY_TIERS

RESOURCE = "loyalty_tiers"


@dataclass(frozen=True)
class PushResult:
    status: int
    body: dict


def _error(status: int, code: str, message: str, details=None) -> PushResult:
    return PushResult(status, error_body(code, message, details or {}))


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The signature header value for a body (MuleSoft's side of the contract; tests and the sandbox use it)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def push_receive(*, connection_id: int, body: bytes, headers: Mapping[str, str]) -> PushResult:
    connection = Connection.objects.filter(pk=connection_id, kind="mulesoft", is_active=True).first()
    secret = (connection.credentials.get("push_secret") or "") if connection is not None else ""
    if not secret:  # unknown, inactive, or push not enabled: nothing to say about which
        return _error(404, "not_found", "unknown push endpoint")
    if len(body) > conf.PUSH_MAX_BYTES:
        return _error(413, "payload_too_large", f"the body is over {conf.PUSH_MAX_BYTES} bytes")
    raw_ts = (headers.get("X-SyncHub-Timestamp") or "").strip()
    given = (headers.get("X-SyncHub-Signature") or "").strip()
    if not raw_ts.isdigit() or not given:
        return _error(401, "invalid_signature", "missing X-SyncHub-Timestamp or X-SyncHub-Signature")
    if not hmac.compare_digest(sign(secret, raw_ts, body), given):
        activity_record(
            event="webhook.rejected",
            connection=connection,
            level=ActivityLevel.WARNING,
            message="MuleSoft push with a bad signature: rejected",
        )
        return _error(401, "invalid_signature", "the signature does not match")
    now = clock.now()
    signed_at = dt.datetime.fromtimestamp(int(raw_ts), tz=dt.UTC)
    if abs((now - signed_at).total_seconds()) > conf.PUSH_TOLERANCE_SECONDS:
        return _error(
            401, "stale_timestamp", f"the signed timestamp is more than {conf.PUSH_TOLERANCE_SECONDS} s from our clock"
        )
    try:
        # Bounded like every body we accept (core.bodies): json.loads alone raises RecursionError on deep nesting.
        payload = parse_json(body, limit_bytes=conf.PUSH_MAX_BYTES, limit_depth=conf.PUSH_MAX_DEPTH)
    except BodyRejected as exc:
        return _error(exc.http_status, exc.code, str(exc))
    if not isinstance(payload, dict):
        return _error(400, "invalid", "the body is not a JSON object")
    tiers, deleted = payload.get("tiers", []), payload.get("deleted", [])
    if not isinstance(tiers, list) or not isinstance(deleted, list) or not (tiers or deleted):
        return _error(400, "invalid", 'expected {"tiers": [...], "deleted": [...]} with at least one entry')
    if len(tiers) + len(deleted) > conf.PUSH_MAX_TIERS:
        return _error(413, "payload_too_large", f"more than {conf.PUSH_MAX_TIERS} tiers in one push")
    bad = [i for i, t in enumerate(tiers) if not isinstance(t, dict) or _external_id(t) is None]
    bad += [f"deleted[{i}]" for i, d in enumerate(deleted) if not isinstance(d, (str, int)) or str(d).strip() == ""]
    if bad:
        return _error(400, "invalid", "every tier needs an id or a code", {"entries": bad[:20]})
    delivery_id = (headers.get("X-SyncHub-Delivery-Id") or "").strip()[:64]
    body_hash = hashlib.sha256(body).hexdigest()
    try:
        with transaction.atomic():
            _forget_expired(connection, now)
            row = PushDelivery.objects.create(
                connection=connection,
                delivery_id=delivery_id,
                body_hash=body_hash,
                signed_at=signed_at,
                received_at=now,
            )
            queues = []
            if tiers:
                queues.append(_enqueue(connection, tiers, deleted=False))
            if deleted:
                queues.append(_enqueue(connection, [{"id": str(d)} for d in deleted], deleted=True))
            PushDelivery.objects.filter(pk=row.pk).update(queue_id=queues[-1].pk)
    except IntegrityError:
        activity_record(
            event="webhook.duplicate",
            connection=connection,
            message="MuleSoft push already received (same delivery id or same signed body): dropped",
            data={"delivery_id": delivery_id, "body_hash": body_hash[:16]},
        )
        return PushResult(200, {"ok": True, "duplicate": delivery_id or body_hash[:16]})
    queue_id = queues[-1].pk
    transaction.on_commit(lambda: enqueue_queue(queue_id))
    return PushResult(202, {"ok": True, "queue": queue_id, "tiers": len(tiers), "deleted": len(deleted)})


def _external_id(tier: dict) -> str | None:
    try:
        return LOYALTY_TIERS.external_id(tier)
    except MappingError:
        return None


def _enqueue(connection, records: list[dict], *, deleted: bool):
    return sync_enqueue_records(
        connection=connection, resource=RESOURCE, records=records, origin=Origin.WEBHOOK, deleted=deleted, enqueue=False
    )


def _forget_expired(connection, now: dt.datetime) -> None:
    """Rows past twice the window no longer count (a replay that old fails the timestamp check anyway)."""
    cutoff = now - dt.timedelta(seconds=2 * conf.PUSH_TOLERANCE_SECONDS)
    PushDelivery.objects.filter(connection=connection, received_at__lt=cutoff).delete()


def push_deliveries_purge() -> int:
    cutoff = clock.now() - dt.timedelta(seconds=2 * conf.PUSH_TOLERANCE_SECONDS)
    return PushDelivery.objects.filter(received_at__lt=cutoff).delete()[0]
