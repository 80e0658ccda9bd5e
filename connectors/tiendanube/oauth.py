"""Connecting stores: the OAuth flow (single-use state bound to the session), installs that arrive without
our state (claimed by staff) and connecting a store (its schedule resumes; its first sync starts now)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from urllib.parse import urlencode

import requests
from django.db import transaction

from connectors.models import Connection
from core import clock
from core.http import BlockedDestination, check_url, guarded_session
from core.redaction import redact, register_secret
from sync import runpolicy
from sync.activity import activity_record
from sync.connection_runs import connection_enqueue
from sync.models import ActivityLevel, Origin, RunSchedule

from . import conf
from .errors import OAuthError, OAuthUpstreamError, StoreOwnedElsewhere, TiendanubeError
from .models import OAuthState, PendingInstall
from .selectors import KIND


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
        RunSchedule.objects.filter(connection=conn).update(organization=organization)
        runpolicy.connection_resume(conn)  # active again, clean streak, next sync one tier interval away
        activity_record(
            event="tiendanube.connected",
            connection=conn,
            actor=actor,
            message=f"store {store_id} connected; first sync started",
        )
    connection_enqueue(connection=conn, origin=Origin.MANUAL, actor=actor)
    return conn
