"""Lightspeed writes: connecting a retailer (OAuth or personal token) and the one system-wide token.

The token refresh is serialised per connection by a database row lock (``select_for_update`` on the
Connection inside ``atomic``) so several qcluster workers on several hosts refresh once between them;
an in-process lock per connection does the same job for threads on SQLite, which has no row locks.
A worker that hangs holding the lock loses it after ``LIGHTSPEED_REFRESH_LOCK_IDLE_SECONDS`` (PostgreSQL
ends its session); a refusal whose token someone else already replaced uses their stored pair.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import secrets
import threading
import time
from urllib.parse import urlencode

from django.db import OperationalError, transaction
from django.db import connection as db_connection

from connectors.base import AuthError, UpstreamError
from connectors.models import Connection, Health
from core import clock
from sync.activity import activity_record

from . import auth, conf
from .models import OAuthState

KIND = "lightspeed"


class OAuthFlowError(Exception):
    """A connect callback we refuse. The message is safe to show to the user."""

    http_status = 400


# --- OAuth connect -------------------------------------------------------------------------------------
def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def oauth_start(*, user, organization, session_key: str, connection_name: str = "") -> str:
    """Create a single-use, short-lived state bound to ``user`` and their session; return the authorize URL."""
    if not conf.client_id():
        raise OAuthFlowError("LIGHTSPEED_CLIENT_ID is not configured")
    if not session_key:
        raise OAuthFlowError("Start the connection from a signed-in browser session.")
    now = clock.now()
    OAuthState.objects.filter(expires_at__lt=now - dt.timedelta(days=1)).delete()  # keep the table small
    state = secrets.token_urlsafe(32)
    OAuthState.objects.create(
        state_hash=_state_hash(state),
        user=user,
        organization=organization,
        connection_name=connection_name[:200],
        session_hash=_state_hash(session_key),
        created_at=now,
        expires_at=now + dt.timedelta(seconds=conf.state_ttl_seconds()),
    )
    query = urlencode(
        {"response_type": "code", "client_id": conf.client_id(), "redirect_uri": conf.redirect_uri(), "state": state}
    )
    return f"{conf.authorize_url()}?{query}"


def oauth_state_consume(*, state: str | None, user, session_key: str | None) -> OAuthState:
    """Validate and burn a callback's state. Any problem raises OAuthFlowError with a clear message."""
    if not state:
        raise OAuthFlowError("The callback carries no state parameter; start the connection again.")
    row = OAuthState.objects.filter(state_hash=_state_hash(state)).first()
    if row is None:
        raise OAuthFlowError("Unknown state: this callback was not started here. Start the connection again.")
    if row.used_at is not None:
        raise OAuthFlowError("This state was already used; each connect link works once. Start again.")
    if not getattr(user, "is_authenticated", False) or row.user_id != user.pk:
        raise OAuthFlowError("This connection was started by another user; sign in as that user or start again.")
    if not session_key or not row.session_hash or row.session_hash != _state_hash(session_key):
        raise OAuthFlowError("This connection was started in another browser session; start it again here.")
    now = clock.now()
    if row.expires_at <= now:
        raise OAuthFlowError("This connect link expired; start the connection again.")
    # Compare-and-set: of two callbacks racing with the same state, exactly one wins.
    if not OAuthState.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=now):
        raise OAuthFlowError("This state was already used; each connect link works once. Start again.")
    return row


def oauth_complete(
    *,
    user,
    state: str | None,
    code: str | None,
    domain_prefix: str | None,
    error: str = "",
    session_key: str | None = None,
) -> Connection:
    """The callback: burn the state first (even on an error, so it cannot be replayed), then exchange the
    code and store the tokens encrypted on the retailer's Connection."""
    row = oauth_state_consume(state=state, user=user, session_key=session_key)
    if error:
        raise OAuthFlowError(f"Lightspeed did not grant access: {error[:100]}")
    if not code:
        raise OAuthFlowError("The callback carries no authorization code.")
    try:
        prefix = auth.validate_domain_prefix(domain_prefix)
        tokens = auth.exchange_code(code=code, domain_prefix=prefix)
    except UpstreamError as exc:
        raise OAuthFlowError(f"Could not exchange the authorization code: {exc}") from None
    return connection_connect(
        organization=row.organization,
        domain_prefix=prefix,
        credentials=tokens.as_credentials(),
        auth_kind="oauth",
        name=row.connection_name,
        actor=user,
    )


def connection_connect(
    *,
    organization,
    domain_prefix: str,
    credentials: dict,
    auth_kind: str,
    name: str = "",
    actor=None,
    base_url: str | None = None,
) -> Connection:
    """Create or update the Connection of one retailer (external_account_id = domain prefix)."""
    prefix = auth.validate_domain_prefix(domain_prefix)
    with transaction.atomic():
        conn = Connection.objects.select_for_update().filter(kind=KIND, external_account_id=prefix).first()
        if conn is not None and conn.organization_id != organization.pk:
            raise OAuthFlowError(f"The retailer {prefix!r} is already connected to another organization.")
        if conn is None:
            conn = Connection(organization=organization, kind=KIND, external_account_id=prefix)
        conn.name = name or conn.name or f"Lightspeed {prefix}"
        conn.base_url = base_url or auth.api_base_url_for(prefix)
        conn.config = {**(conn.config or {}), "domain_prefix": prefix, "auth": auth_kind}
        conn.credentials = credentials
        conn.needs_reauth = False
        conn.is_active = True
        conn.health = Health.UNKNOWN
        conn.last_error = ""
        conn.save()
        activity_record(
            event="connection.connected",
            connection=conn,
            actor=actor,
            message=f"Lightspeed retailer {prefix} connected ({auth_kind})",
        )
    return conn


def connection_connect_personal_token(
    *, organization, domain_prefix: str, token: str, name: str = "", actor=None, base_url: str | None = None
) -> Connection:
    return connection_connect(
        organization=organization,
        domain_prefix=domain_prefix,
        credentials={"personal_token": token},
        auth_kind="personal_token",
        name=name,
        actor=actor,
        base_url=base_url,
    )


# --- The system-wide token -------------------------------------------------------------------------------
_local_locks: dict[int, threading.Lock] = {}
_local_locks_guard = threading.Lock()


@contextlib.contextmanager
def _local_lock(connection_id: int):
    with _local_locks_guard:
        lock = _local_locks.setdefault(connection_id, threading.Lock())
    with lock:
        yield


def token_expiring(credentials: dict, *, margin: float | None = None) -> bool:
    expires_at = credentials.get("expires_at")
    if not expires_at:
        return False  # unknown expiry: refresh on a 401 only
    margin = conf.refresh_margin_seconds() if margin is None else margin
    return float(expires_at) - margin <= clock.now().timestamp()


def token_refresh(*, connection_id: int, stale_access_token: str | None, close_db_after: bool = False) -> dict:
    """Refresh the connection's OAuth token unless another worker already did; return current credentials.

    ``stale_access_token`` is the token the caller found wanting (expiring, or answered 401). Once the
    lock is ours we re-read: if the stored token differs and is fresh, someone refreshed while we waited,
    and we use theirs instead of spending the (rotating) refresh token again.
    ``close_db_after``: the caller runs in a thread that is not the run's own (the engine's page
    prefetcher), where Django opened a connection just for this; close it rather than leak it."""
    sent: dict = {}
    try:
        with _local_lock(connection_id):
            try:
                if db_connection.vendor == "sqlite":
                    # No row locks on SQLite (stack-notes §2): the in-process lock serialises threads; keep
                    # each DB step short and retry it while another thread holds the database's write lock.
                    return _refresh(
                        connection_id, stale_access_token, load=_sqlite_retry, store=_sqlite_retry, sent=sent
                    )
                with transaction.atomic():
                    _bound_lock_hold()
                    return _refresh(connection_id, stale_access_token, load=_call, store=_call, sent=sent)
            except AuthError as exc:
                if exc.code != "invalid_grant" or "refresh_token" not in sent:
                    raise
                current = _stored_after_refusal(connection_id, refused=sent["refresh_token"])
                if current is None:
                    raise
                return current
    finally:
        if close_db_after and not db_connection.in_atomic_block:
            db_connection.close()


def _bound_lock_hold() -> None:
    """Have PostgreSQL end our session if it sits idle in this transaction (the token call) longer than a
    refresh can take, releasing the row lock a hung worker would otherwise hold for everyone."""
    ms = int(conf.refresh_lock_idle_seconds() * 1000)
    with db_connection.cursor() as cur:
        cur.execute("SELECT set_config('idle_in_transaction_session_timeout', %s, true)", [str(ms)])


def _stored_after_refusal(connection_id: int, *, refused: str, wait: float = 1.0) -> dict | None:
    """Lightspeed refused the refresh token we sent (invalid_grant). If the stored pair is no longer that
    token, another worker refreshed after we read it (processes on SQLite, which has no row lock; on
    PostgreSQL a worker that hung past ``refresh_lock_idle_seconds`` and lost its lock): its pair is valid,
    so use it instead of asking the retailer to reconnect. It may be storing it right now: look again for
    ``wait`` seconds before giving up."""
    deadline = time.monotonic() + wait  # another process's commit: wall time, not core.clock
    while True:
        creds = Connection.objects.get(pk=connection_id).credentials
        if creds.get("refresh_token") not in (None, "", refused) and creds.get("access_token"):
            return creds
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def _call(fn):
    return fn()


def _sqlite_retry(fn, *, tries: int = 200):
    for attempt in range(tries):
        try:
            with transaction.atomic():
                return fn()
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.01)  # a real lock held by a real thread: wall time, not core.clock


def _refresh(connection_id: int, stale: str | None, *, load, store, sent: dict) -> dict:
    # NO KEY UPDATE (the key never changes): serialises refreshers without blocking rows that merely
    # reference the connection (foreign-key checks take KEY SHARE).
    conn = load(lambda: Connection.objects.select_for_update(no_key=True).get(pk=connection_id))
    creds = conn.credentials
    current = creds.get("access_token")
    if current and current != stale and not token_expiring(creds):
        return creds
    refresh_token = creds.get("refresh_token")
    if not refresh_token:
        raise AuthError("no OAuth refresh token is stored for this connection; reconnect it", code="no_refresh_token")
    sent["refresh_token"] = refresh_token  # for a refusal: was it spent by someone else meanwhile?
    tokens = auth.refresh(
        refresh_token=refresh_token,
        token_url=auth.token_url_for(domain_prefix=conn.external_account_id, base_url=conn.base_url),
    )
    # The old refresh token died the moment Lightspeed answered: the new pair must be stored now.
    creds.update(tokens.as_credentials())

    def save() -> None:
        conn.credentials = creds
        conn.save(update_fields=["credentials_encrypted", "updated_at"])
        activity_record(
            event="connection.token_refreshed",
            connection=conn,
            message=f"{conn.name}: access token refreshed",
            data={"expires_at": dt.datetime.fromtimestamp(tokens.expires_at, dt.UTC).isoformat()},
        )

    store(save)
    return creds


def credentials_for_request(connection: Connection) -> dict:
    """The stored credentials, decrypted. Raises AuthError when there are none."""
    creds = connection.credentials
    if not creds.get("personal_token") and not creds.get("access_token"):
        raise AuthError("no Lightspeed token is stored for this connection; connect it first", code="no_token")
    return creds
