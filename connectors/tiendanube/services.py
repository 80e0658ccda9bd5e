"""Writes for Tiendanube: connecting stores (OAuth), scheduling (tiers, backoff, needs-reauth), the
parallel cap, store syncs, webhooks, privacy requests, health and the login sync."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

import requests
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django_q.models import Schedule
from django_q.tasks import async_task

from connectors.base import UpstreamError
from connectors.models import Connection
from core import clock
from core.bodies import parse_json
from core.http import BlockedDestination, check_url, guarded_session
from core.redaction import redact, register_secret
from sync import services as sync_services
from sync.activity import activity_record
from sync.models import ActivityLevel, Lane, Origin, QueueState
from sync.schedules import ScheduleSpec, schedule_upsert

from . import conf, selectors
from .models import OAuthState, PendingInstall, PrivacyRequest, ScheduleState, StoreSchedule, SyncSlot, Tier
from .selectors import KIND, backoff_delay, tier_interval
from .signals import store_synced

log = logging.getLogger(__name__)
RESOURCE_ORDER = ("products", "orders", "customers")
SYNC_TASK = "connectors.tiendanube.tasks.sync_store"


class TiendanubeError(Exception):
    http_status = 400
    code = "invalid"


class OAuthError(TiendanubeError):
    code = "oauth_invalid"


class OAuthUpstreamError(TiendanubeError):
    http_status = 502
    code = "oauth_upstream"


class StoreOwnedElsewhere(TiendanubeError):
    http_status = 409
    code = "store_owned_elsewhere"


class StoreUnavailable(TiendanubeError):
    http_status = 409
    code = "store_unavailable"


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


# --- OAuth -----------------------------------------------------------------------------------------------
def oauth_start(*, user, organization, session_key: str) -> str:
    """Create a single-use state bound to this session; return the authorize URL to send the user to."""
    cfg = conf.get()
    if not cfg.app_id:
        raise OAuthError("TIENDANUBE_APP_ID is not configured")
    state = secrets.token_urlsafe(32)
    now = clock.now()
    OAuthState.objects.filter(expires_at__lt=now - dt.timedelta(days=1)).delete()  # keep the table small
    OAuthState.objects.create(
        state_hash=_hash(state),
        session_key=session_key,
        user=user,
        organization=organization,
        created_at=now,
        expires_at=now + dt.timedelta(seconds=cfg.oauth_state_ttl),
    )
    activity_record(
        event="tiendanube.oauth_started",
        organization=organization,
        actor=user,
        message="Tiendanube connect flow started",
    )
    return cfg.authorize_url.format(app_id=cfg.app_id) + "?" + urlencode({"state": state})


def session_has_pending_state(session_key: str | None) -> bool:
    return (
        bool(session_key)
        and OAuthState.objects.filter(
            session_key=session_key, used_at__isnull=True, expires_at__gt=clock.now()
        ).exists()
    )


def oauth_complete(*, session_key: str | None, state: str | None, code: str | None, actor=None):
    """Check the state, exchange the code, connect the store. Returns the Connection, or a PendingInstall
    when the install arrived without our state (started from the app store, not by one of our users)."""
    if not code:
        raise OAuthError("the callback has no authorization code")
    if not state:
        if session_has_pending_state(session_key):
            # This browser started a flow with us and came back without the state: refuse, don't guess.
            raise OAuthError("the callback is missing the state parameter")
        return pending_install_record(*exchange_code(code))
    now = clock.now()
    row = OAuthState.objects.filter(state_hash=_hash(state)).first()
    if row is None or not session_key or not hmac.compare_digest(row.session_key, session_key):
        raise OAuthError("the state does not match a connect flow started in this session")
    if row.used_at is not None:
        raise OAuthError("this state was already used; start the connect flow again")
    if row.expires_at <= now:
        raise OAuthError("this connect flow expired; start it again")
    if not OAuthState.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=now):
        raise OAuthError("this state was already used; start the connect flow again")
    token, store_id, scope = exchange_code(code)
    return store_connect(
        organization=row.organization, store_id=store_id, access_token=token, scope=scope, actor=actor or row.user
    )


def exchange_code(code: str) -> tuple[str, str, str]:
    cfg = conf.get()
    data = {
        "client_id": cfg.app_id,
        "client_secret": cfg.client_secret,
        "grant_type": "authorization_code",
        "code": code,
    }
    session = guarded_session()
    try:
        check_url(cfg.token_url)
        response = session.post(
            cfg.token_url,
            data=data,
            timeout=(5, 30),
            allow_redirects=False,
            headers={"User-Agent": cfg.user_agent, "Accept": "application/json"},
        )
    except (BlockedDestination, requests.RequestException) as exc:
        raise OAuthUpstreamError(f"could not reach the Tiendanube token endpoint: {exc.__class__.__name__}") from None
    finally:
        session.close()
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):  # a JSON array or scalar: no fields to read, never an AttributeError
        body = {}
    if 400 <= response.status_code < 500:
        raise OAuthError(
            f"Tiendanube refused the code: {redact(body.get('error_description') or body.get('error') or response.status_code)}"
        )
    if response.status_code != 200 or not body.get("access_token") or not body.get("user_id"):
        raise OAuthUpstreamError(f"unexpected answer from the Tiendanube token endpoint (HTTP {response.status_code})")
    register_secret(body["access_token"])
    return body["access_token"], str(body["user_id"]), str(body.get("scope") or "")


def pending_install_record(token: str, store_id: str, scope: str) -> PendingInstall:
    pending, _ = PendingInstall.objects.get_or_create(store_id=store_id)
    pending.access_token = token
    pending.scope = scope
    pending.claimed_at = None
    pending.save()
    activity_record(
        event="tiendanube.install_pending",
        level=ActivityLevel.WARNING,
        message=f"store {store_id} installed the app without a connect flow; a staff user must claim it",
    )
    return pending


def pending_claim(*, pending: PendingInstall, organization, actor=None) -> Connection:
    if pending.claimed_at is not None:
        raise TiendanubeError(f"pending store {pending.store_id} was already claimed")
    token = pending.access_token
    if not token:
        raise TiendanubeError(f"pending store {pending.store_id} has no token; ask the merchant to reinstall")
    conn = store_connect(
        organization=organization, store_id=pending.store_id, access_token=token, scope=pending.scope, actor=actor
    )
    PendingInstall.objects.filter(pk=pending.pk).update(
        claimed_at=clock.now(),
        claimed_by=actor if getattr(actor, "pk", None) else None,
        connection=conn,
        organization=organization,
        token_encrypted="",
    )
    return conn


def store_connect(*, organization, store_id: str, access_token: str, scope: str = "", actor=None) -> Connection:
    """Create or update the store's Connection, (re)activate its schedule and start its first sync now."""
    cfg = conf.get()
    with transaction.atomic():
        conn = Connection.objects.select_for_update().filter(kind=KIND, external_account_id=store_id).first()
        if conn is not None and conn.organization_id != organization.pk:
            raise StoreOwnedElsewhere(f"store {store_id} is already connected to another organization")
        if conn is None:
            conn = Connection(
                organization=organization, kind=KIND, external_account_id=store_id, name=f"Tiendanube store {store_id}"
            )
        conn.base_url = cfg.store_base_url(store_id)
        conn.credentials = {"access_token": access_token}
        conn.config = {**(conn.config or {}), "scope": scope}
        conn.needs_reauth = False
        conn.is_active = True
        conn.consecutive_failures = 0
        conn.last_error = ""
        conn.health = "unknown"
        conn.save()
        now = clock.now()
        sched, _ = StoreSchedule.objects.get_or_create(connection=conn, defaults={"organization": organization})
        sched.organization = organization
        sched.state = ScheduleState.ACTIVE
        sched.failures_in_row = 0
        sched.last_error = ""
        sched.tier = sched.tier or Tier.HIGH
        sched.next_sync_at = now + tier_interval(sched.tier)
        sched.save()
        schedule_sync(sched)
        activity_record(
            event="tiendanube.connected",
            connection=conn,
            actor=actor,
            message=f"store {store_id} connected; first sync started",
        )
    store_enqueue_sync(connection=conn, origin=Origin.MANUAL, actor=actor)
    return conn


# --- Schedules ----------------------------------------------------------------------------------------------
def schedule_name(connection_id: int) -> str:
    return f"tiendanube:store:{connection_id}"


def schedule_spec(sched: StoreSchedule) -> ScheduleSpec:
    paused = sched.state in (ScheduleState.NEEDS_REAUTH, ScheduleState.DISCONNECTED)
    return ScheduleSpec(
        name=schedule_name(sched.connection_id),
        func=SYNC_TASK,
        schedule_type=Schedule.MINUTES,
        minutes=int(tier_interval(sched.tier).total_seconds() // 60),
        args=str(sched.connection_id),
        repeats=0 if paused else -1,
        next_run=sched.next_sync_at or clock.now(),
    )


def schedule_sync(sched: StoreSchedule) -> Schedule:
    """Mirror the store's state into its one django-q2 Schedule (paused = repeats 0)."""
    from .schedules import HEALTH

    if not Schedule.objects.filter(name=HEALTH.name).exists():
        schedule_upsert(HEALTH)  # the 30-minute health check exists as soon as a store does
    obj = schedule_upsert(schedule_spec(sched))
    if sched.schedule_name != obj.name:
        StoreSchedule.objects.filter(pk=sched.pk).update(schedule_name=obj.name)
        sched.schedule_name = obj.name
    return obj


def schedules_initialize(*, connections) -> int:
    """(Re)create the schedule of each store, keeping its state; stores without one get one."""
    n = 0
    for conn in connections:
        sched, created = StoreSchedule.objects.get_or_create(
            connection=conn, defaults={"organization_id": conn.organization_id, "next_sync_at": clock.now()}
        )
        if conn.needs_reauth and sched.state not in (ScheduleState.NEEDS_REAUTH, ScheduleState.DISCONNECTED):
            sched.state = ScheduleState.NEEDS_REAUTH
            sched.save(update_fields=["state"])
        if sched.next_sync_at is None:
            sched.next_sync_at = clock.now()
            sched.save(update_fields=["next_sync_at"])
        schedule_sync(sched)
        n += 1
    return n


# --- Enqueueing -------------------------------------------------------------------------------------------
def _enqueue(connection_id: int, origin: str) -> None:
    async_task(SYNC_TASK, connection_id, origin, task_name=f"tiendanube-store-{connection_id}", group="tiendanube")


def store_enqueue_sync(*, connection: Connection, origin: str = Origin.MANUAL, actor=None) -> bool:
    """Enqueue a store sync unless one is already queued or running. Never calls the upstream."""
    if connection.needs_reauth or not connection.is_active:
        raise StoreUnavailable(f"store {connection.name!r} needs to be reconnected before it can sync")
    now = clock.now()
    sched, _ = StoreSchedule.objects.get_or_create(
        connection=connection, defaults={"organization_id": connection.organization_id}
    )
    if SyncSlot.objects.filter(connection=connection, lease_until__gt=now).exists():
        return False
    # Compare-and-set: only one caller flips queued_at, so two clicks (or logins) enqueue once.
    claimed = (
        StoreSchedule.objects.filter(pk=sched.pk)
        .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=now - selectors.QUEUED_STALE_AFTER))
        .update(queued_at=now)
    )
    if not claimed:
        return False
    activity_record(
        event="tiendanube.sync_enqueued",
        connection=connection,
        actor=actor,
        message=f"{origin} sync of the store enqueued",
        data={"origin": origin},
    )
    conn_id = connection.pk
    transaction.on_commit(lambda: _enqueue(conn_id, origin))
    return True


def stores_enqueue_all(*, connections, origin: str = Origin.MANUAL, actor=None) -> dict[int, str]:
    result: dict[int, str] = {}
    for conn in connections:
        try:
            result[conn.pk] = (
                "enqueued" if store_enqueue_sync(connection=conn, origin=origin, actor=actor) else "already queued"
            )
        except StoreUnavailable:
            result[conn.pk] = "needs reconnect"
    return result


def login_sync(*, user) -> list[int]:
    """On login: enqueue a sync of each of the user's organizations' stores whose last success is older
    than its priority interval, skipping ones already queued or running. Enqueue only."""
    org_ids = list(user.memberships.values_list("organization_id", flat=True))
    if not org_ids:
        return []
    now = clock.now()
    enqueued = []
    stores = Connection.objects.filter(organization_id__in=org_ids, kind=KIND, is_active=True, needs_reauth=False)
    for conn in stores.select_related("tiendanube_schedule"):
        sched = getattr(conn, "tiendanube_schedule", None)
        if sched is None or not selectors.is_stale(sched, now=now) or selectors.is_queued_or_running(sched, now=now):
            continue
        if store_enqueue_sync(connection=conn, origin=Origin.LOGIN, actor=user):
            activity_record(
                event="tiendanube.login_sync",
                connection=conn,
                actor=user,
                message=f"{user.get_username()} logged in; stale store sync enqueued",
                data={"origin": Origin.LOGIN},
            )
            enqueued.append(conn.pk)
    return enqueued


# --- The parallel cap ---------------------------------------------------------------------------------------
def _slot_lease() -> dt.timedelta:
    from django.conf import settings

    return dt.timedelta(seconds=int(settings.Q_CLUSTER.get("timeout") or 900) + 60)


class AlreadyRunning(Exception):
    pass


def slot_acquire(connection: Connection) -> SyncSlot | None:
    """Take one of the TIENDANUBE_MAX_PARALLEL_SYNCS slots for this store (None: all busy). Raises
    AlreadyRunning if the store holds a live slot. Rows + unique(connection) make both rules DB facts."""
    cap = conf.get().max_parallel_syncs
    for number in range(1, cap + 1):
        SyncSlot.objects.get_or_create(number=number)
    now = clock.now()
    with transaction.atomic():
        qs = SyncSlot.objects.filter(number__lte=cap).order_by("number")
        if sync_services.is_postgres():
            qs = qs.select_for_update()  # serialises acquirers on PostgreSQL
        mine = next((s for s in qs if s.connection_id == connection.pk), None)
        if mine is not None:
            if mine.lease_until and mine.lease_until > now:
                raise AlreadyRunning(f"store {connection.pk} is already syncing")
            slot_release(mine)  # its worker died: the lease ran out
        for slot in list(qs):
            if slot.connection_id is not None and slot.lease_until and slot.lease_until > now:
                continue
            try:
                with transaction.atomic():
                    # Compare-and-set on the holder we read: SQLite has no row locks.
                    won = SyncSlot.objects.filter(
                        pk=slot.pk, connection_id=slot.connection_id, lease_until=slot.lease_until
                    ).update(connection=connection, acquired_at=now, lease_until=now + _slot_lease())
            except IntegrityError:  # unique(connection): a concurrent worker took a slot for this store
                raise AlreadyRunning(f"store {connection.pk} is already syncing") from None
            if won:
                slot.refresh_from_db()
                return slot
    return None


def slot_release(slot: SyncSlot) -> None:
    SyncSlot.objects.filter(pk=slot.pk, connection_id=slot.connection_id).update(
        connection=None, acquired_at=None, lease_until=None
    )


@contextmanager
def queue_run_gate(queue) -> Iterator[bool]:
    """The connector's ``run_gate`` (see sync.gates): a run of a store started outside store_sync (the
    generic API trigger, the admin's Sync now, a retry, the reaper's resume, manage.py sync_run) takes a slot
    too, so TIENDANUBE_MAX_PARALLEL_SYNCS and "a store never syncs twice at once" hold on every path.
    store_sync calls the engine directly inside its own slot. Webhook-lane queues hold records already
    fetched one by one, not a store sync, and pass."""
    if queue.lane != Lane.RUN:
        yield True
        return
    try:
        slot = slot_acquire(queue.connection)
        reason = f"all {conf.get().max_parallel_syncs} store-sync slots are busy"
    except AlreadyRunning:
        slot, reason = None, "this store is already syncing"
    if slot is None:
        activity_record(
            event="tiendanube.run_held_back",
            queue=queue,
            level=ActivityLevel.WARNING,
            message=f"run of {queue.resource} held back: {reason}; it resumes when a slot frees up",
        )
        yield False
        return
    try:
        yield True
    finally:
        slot_release(slot)


# --- The store sync -------------------------------------------------------------------------------------------
@dataclass
class StoreSyncResult:
    outcome: str  # "success" | "failed" | "needs_reauth" | "deferred" | "running" | "skipped"
    states: dict[str, str]
    error: str = ""


def store_sync(*, connection_id: int, origin: str = Origin.SCHEDULE, actor=None) -> StoreSyncResult:
    """Sync products, orders and customers of one store inside one slot, then move its schedule."""
    from sync.engine import run_queue

    conn = Connection.objects.select_related("organization").get(pk=connection_id, kind=KIND)
    sched, _ = StoreSchedule.objects.get_or_create(connection=conn, defaults={"organization_id": conn.organization_id})
    if conn.needs_reauth or not conn.is_active:
        StoreSchedule.objects.filter(pk=sched.pk).update(queued_at=None)
        _pause(
            sched,
            ScheduleState.NEEDS_REAUTH if conn.needs_reauth else ScheduleState.DISCONNECTED,
            "store needs reconnect",
        )
        return StoreSyncResult("skipped", {}, "store needs to be reconnected")
    try:
        slot = slot_acquire(conn)
    except AlreadyRunning as exc:
        return StoreSyncResult("running", {}, str(exc))
    if slot is None:
        return _defer(sched, origin)
    StoreSchedule.objects.filter(pk=sched.pk).update(queued_at=None)
    states: dict[str, str] = {}
    error = ""
    try:
        for resource in RESOURCE_ORDER:
            try:
                started = sync_services.sync_start(
                    connection=conn, resource=resource, origin=origin, actor=actor, enqueue=False
                )
            except sync_services.SyncServiceError as exc:
                states[resource], error = "skipped", str(exc)
                break
            states[resource] = run_queue(started.queue.pk) or QueueState.PROCESSING
            if states[resource] != QueueState.DONE:
                started.queue.refresh_from_db(fields=["last_error", "fetch_error"])
                error = (
                    error
                    or started.queue.last_error
                    or started.queue.fetch_error
                    or f"{resource} ended {states[resource]}"
                )
            conn.refresh_from_db(fields=["needs_reauth", "is_active"])
            if conn.needs_reauth:
                break
    finally:
        slot_release(slot)
    return store_record_result(conn=conn, sched=sched, states=states, error=error)


def _defer(sched: StoreSchedule, origin: str) -> StoreSyncResult:
    """All slots busy: try again in a minute (the schedule fires it), keep the queued marker."""
    retry_at = clock.now() + dt.timedelta(minutes=1)
    StoreSchedule.objects.filter(pk=sched.pk).update(next_sync_at=retry_at)
    sched.next_sync_at = retry_at
    schedule_sync(sched)
    activity_record(
        event="tiendanube.sync_deferred",
        connection=sched.connection,
        level=ActivityLevel.WARNING,
        message=f"{origin} store sync deferred: {conf.get().max_parallel_syncs} store syncs already running",
    )
    return StoreSyncResult("deferred", {})


def store_record_result(
    *, conn: Connection, sched: StoreSchedule, states: dict[str, str], error: str
) -> StoreSyncResult:
    """Move the schedule: success -> tier from activity; failure -> back off 5/15/45 min; after N failures
    in a row or a 401 -> needs reconnect, schedule paused."""
    now = clock.now()
    sched.refresh_from_db()
    sched.last_sync_at = now
    succeeded = bool(states) and all(s == QueueState.DONE for s in states.values())
    if succeeded:
        activity = max(filter(None, [selectors.latest_upstream_change(conn), sched.last_activity_at]), default=None)
        sched.last_activity_at = activity
        sched.tier = selectors.tier_for(activity, now=now)
        sched.failures_in_row = 0
        sched.last_success_at = now
        sched.last_error = ""
        sched.state = ScheduleState.ACTIVE
        sched.next_sync_at = now + tier_interval(sched.tier)
        sched.save()
        schedule_sync(sched)
        activity_record(
            event="tiendanube.store_synced",
            connection=conn,
            message=f"store synced; tier {sched.tier}, next sync {sched.next_sync_at:%H:%M} UTC",
            data={"tier": sched.tier, "states": states},
        )
        _fire_post_sync(conn)
        return StoreSyncResult("success", states)
    sched.failures_in_row += 1
    sched.last_failure_at = now
    sched.last_error = redact(error)[:2000]
    conn.refresh_from_db(fields=["needs_reauth"])
    if conn.needs_reauth or sched.failures_in_row >= conf.get().reauth_after_failures:
        sched.save()
        reason = (
            "the token was rejected (401)" if conn.needs_reauth else f"{sched.failures_in_row} failed syncs in a row"
        )
        store_mark_needs_reauth(conn, reason=reason)
        return StoreSyncResult("needs_reauth", states, error)
    sched.state = ScheduleState.BACKOFF
    sched.next_sync_at = now + backoff_delay(sched.failures_in_row)
    sched.save()
    schedule_sync(sched)
    activity_record(
        event="tiendanube.store_sync_failed",
        connection=conn,
        level=ActivityLevel.ERROR,
        message=f"store sync failed ({sched.failures_in_row} in a row); retry at {sched.next_sync_at:%H:%M} UTC: {error}",
        data={"states": states, "failures_in_row": sched.failures_in_row},
    )
    return StoreSyncResult("failed", states, error)


def _pause(sched: StoreSchedule, state: str, reason: str) -> None:
    sched.state = state
    sched.next_sync_at = None
    sched.queued_at = None
    sched.last_error = redact(reason)[:2000]
    sched.save(update_fields=["state", "next_sync_at", "queued_at", "last_error"])
    schedule_sync(sched)


def store_mark_needs_reauth(conn: Connection, *, reason: str) -> None:
    if not conn.needs_reauth:
        sync_services.connection_mark_needs_reauth(connection=conn, reason=reason)
    sched, _ = StoreSchedule.objects.get_or_create(connection=conn, defaults={"organization_id": conn.organization_id})
    _pause(sched, ScheduleState.NEEDS_REAUTH, reason)
    activity_record(
        event="tiendanube.schedule_paused",
        connection=conn,
        level=ActivityLevel.ERROR,
        message=f"schedule paused, reconnect the store: {reason}",
    )


def _fire_post_sync(conn: Connection) -> None:
    """The post-run hook: a signal in-process, plus an optional task (TIENDANUBE_POST_SYNC_HOOK)."""
    for receiver, result in store_synced.send_robust(sender=Connection, connection=conn):
        if isinstance(result, Exception):
            log.error("store_synced receiver %r failed: %s", receiver, redact(result))
    hook = conf.get().post_sync_hook
    if hook:
        async_task(hook, conn.pk, group="tiendanube-post-sync")


# --- Webhooks ----------------------------------------------------------------------------------------------------
class WebhookRejected(TiendanubeError):
    pass


class BadSignature(WebhookRejected):
    http_status = 401
    code = "bad_signature"


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
    except (ValueError, KeyError, TypeError):  # BodyRejected is a ValueError
        raise WebhookRejected("malformed webhook body") from None
    if not isinstance(payload, dict) or "/" not in event:
        raise WebhookRejected("malformed webhook body")
    conn = Connection.objects.filter(kind=KIND, external_account_id=store_id).first()
    if event == "store/redact":
        return privacy_store_redact(store_id=store_id, connection=conn)
    if conn is None:
        log.info("tiendanube webhook %s for unknown store %s ignored", event, store_id)
        return "ignored: unknown store"
    if event == "customers/redact":
        return privacy_customer_redact(connection=conn, payload=payload)
    if event == "customers/data_request":
        return privacy_data_request(connection=conn, payload=payload)
    if event == "app/uninstalled":
        store_disconnect(connection=conn, reason="the app was uninstalled from the store")
        return "disconnected"
    if event == "app/suspended":
        store_mark_needs_reauth(conn, reason="the app was suspended for this store")
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
    StoreSchedule.objects.filter(connection=conn).update(last_activity_at=clock.now(), tier=Tier.HIGH)
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
    from .connector import connector

    conn = Connection.objects.get(pk=connection_id, kind=KIND)
    if conn.needs_reauth or not conn.is_active:
        return "skipped: store needs reconnect"
    client = connector.client(conn)
    try:
        record, _ = client.get_json(f"{connector.resource(resource).path}/{record_id}")
    except UpstreamError as exc:
        if exc.status == 401:
            store_mark_needs_reauth(conn, reason="the token was rejected (401)")
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


def store_disconnect(*, connection: Connection, reason: str) -> None:
    """Uninstalled: the token is dead. Forget it, mark the store, pause its schedule."""
    Connection.objects.filter(pk=connection.pk).update(
        needs_reauth=True, is_active=False, health="down", last_error=reason, credentials_encrypted=""
    )
    connection.refresh_from_db()
    sched, _ = StoreSchedule.objects.get_or_create(
        connection=connection, defaults={"organization_id": connection.organization_id}
    )
    _pause(sched, ScheduleState.DISCONNECTED, reason)
    activity_record(
        event="tiendanube.disconnected",
        connection=connection,
        level=ActivityLevel.WARNING,
        message=f"store disconnected: {reason}; schedule paused",
    )


# --- Privacy (LGPD) ---------------------------------------------------------------------------------------------
def _models():
    from commerce.models import Order, Product
    from customers.models import Customer

    return Product, Order, Customer


def privacy_store_redact(*, store_id: str, connection: Connection | None) -> str:
    """store/redact (48 h after uninstall): delete everything we hold for the store."""
    counts = {}
    if connection is not None:
        for model in _models():
            counts[model.__name__], _ = model.objects.filter(connection=connection).delete()
        Connection.objects.filter(pk=connection.pk).update(is_active=False, needs_reauth=True, credentials_encrypted="")
        sched = StoreSchedule.objects.filter(connection=connection).first()
        if sched is not None:
            _pause(sched, ScheduleState.DISCONNECTED, "store data redacted")
    PrivacyRequest.objects.create(
        event="store/redact", store_id=store_id, connection=connection, result={"deleted": counts}
    )
    activity_record(
        event="tiendanube.store_redacted",
        connection=connection,
        level=ActivityLevel.WARNING,
        message=f"store/redact for store {store_id}: local data deleted",
        data={"deleted": counts},
    )
    return "store redacted"


def _customer_id(payload: dict) -> str:
    customer = payload.get("customer") or {}
    if not isinstance(customer, dict) or not customer.get("id"):
        raise WebhookRejected("privacy webhook has no customer id")
    return str(customer["id"])


def privacy_customer_redact(*, connection: Connection, payload: dict) -> str:
    """customers/redact: anonymise the customer and the personal data on their orders."""
    _, Order, Customer = _models()
    customer_id = _customer_id(payload)
    order_ids = [str(o) for o in (payload.get("orders_to_redact") or [])]
    now = clock.now()
    n_customers = Customer.objects.filter(connection=connection, external_id=customer_id).update(
        first_name="",
        last_name="",
        email="",
        phone="",
        username="",
        company="",
        billing={},
        shipping={},
        extra={"redacted": True},
        deleted_at=now,
    )
    n_orders = (
        Order.objects.filter(connection=connection)
        .filter(Q(customer_external_id=customer_id) | Q(external_id__in=order_ids))
        .update(email="", customer_external_id="", extra={"redacted": True})
    )
    result = {"customers": n_customers, "orders": n_orders}
    PrivacyRequest.objects.create(
        event="customers/redact",
        store_id=connection.external_account_id,
        connection=connection,
        customer_external_id=customer_id,
        result=result,
    )
    activity_record(
        event="tiendanube.customer_redacted",
        connection=connection,
        level=ActivityLevel.WARNING,
        message=f"customers/redact: customer {customer_id} anonymised",
        data=result,
    )
    return "customer redacted"


def privacy_data_request(*, connection: Connection, payload: dict) -> str:
    """customers/data_request: compile what we hold about the customer (kept on the PrivacyRequest row,
    for the merchant to be sent); the activity row only records counts."""
    _, Order, Customer = _models()
    customer_id = _customer_id(payload)
    customers = list(
        Customer.objects.filter(connection=connection, external_id=customer_id).values(
            "external_id", "first_name", "last_name", "email", "phone", "billing", "shipping", "extra"
        )
    )
    orders = list(
        Order.objects.filter(connection=connection, customer_external_id=customer_id).values(
            "external_id", "number", "status", "total", "currency", "email", "line_items"
        )
    )
    result = json.loads(
        json.dumps({"customer": customers, "orders": orders, "data_request": payload.get("data_request")}, default=str)
    )
    PrivacyRequest.objects.create(
        event="customers/data_request",
        store_id=connection.external_account_id,
        connection=connection,
        customer_external_id=customer_id,
        result=result,
    )
    activity_record(
        event="tiendanube.customer_data_request",
        connection=connection,
        message=f"customers/data_request: data of customer {customer_id} compiled",
        data={"customers": len(customers), "orders": len(orders)},
    )
    return "data request compiled"


# --- Health ----------------------------------------------------------------------------------------------------------
def token_diagnose(connection: Connection) -> dict:
    """One cheap authenticated call (GET store). Says whether the token works, never what it is."""
    from .connector import connector

    result = {
        "connection": connection.pk,
        "store_id": connection.external_account_id,
        "has_token": False,
        "valid": False,
        "status": None,
        "detail": "",
    }
    if not connection.has_credentials or not connection.credentials.get("access_token"):
        result["detail"] = "no token stored: connect the store"
        return result
    result["has_token"] = True
    client = connector.client(connection)
    client.max_tries = 1
    try:
        client.get_json("store", params={"fields": "id"})
        result.update(valid=True, status=200, detail="token accepted")
        Connection.objects.filter(pk=connection.pk).update(health="ok", last_checked_at=clock.now())
    except UpstreamError as exc:
        result.update(status=exc.status, detail=str(exc)[:300])
        if exc.status == 401:
            result["detail"] = "token rejected (401): the app was uninstalled or a newer token was issued; reconnect"
            store_mark_needs_reauth(connection, reason="the token was rejected (401)")
        Connection.objects.filter(pk=connection.pk).update(last_checked_at=clock.now())
    finally:
        client.close()
    return result


def health_check(*, connections=None) -> dict:
    """Database, scheduler alive, required settings, token validity per store. Cached for the endpoint."""
    from django.db import connection as db

    report: dict = {"checked_at": clock.now().isoformat()}
    try:
        with db.cursor() as cur:
            cur.execute("SELECT 1")
        report["database"] = {"ok": True}
    except Exception as exc:
        report["database"] = {"ok": False, "detail": exc.__class__.__name__}
    report["scheduler"] = {"ok": selectors.scheduler_alive()}
    missing = conf.get().missing
    report["settings"] = {"ok": not missing, "missing": missing}
    if connections is None:
        connections = Connection.objects.filter(kind=KIND, is_active=True)
    stores = [token_diagnose(conn) for conn in connections]
    report["stores"] = stores
    report["ok"] = all(report[k]["ok"] for k in ("database", "scheduler", "settings")) and all(
        s["valid"] for s in stores
    )
    cache.set(selectors.HEALTH_CACHE_KEY, report, timeout=2 * 3600)
    return report
