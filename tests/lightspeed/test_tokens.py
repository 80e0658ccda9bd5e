"""The one system-wide OAuth token: refresh before expiry, once on a 401, under a per-connection lock,
rotating refresh tokens stored atomically, invalid_grant -> needs-reauth with no retry loop.

Refreshes write the Connection from the engine's page-prefetch thread, so these tests commit
(transactional_db) instead of hiding rows in the test transaction."""

import contextlib
import threading

import pytest

from connectors.lightspeed import services as ls_services
from connectors.lightspeed.client import LightspeedClient
from connectors.models import Connection
from customers.models import Customer
from sync import services, tasks
from sync.models import QueueState, StatusState, SyncActivity, SyncQueue, SyncStatus


@pytest.fixture
def org(transactional_db):
    from sync.models import Organization

    return Organization.objects.create(name="Acme", slug="acme")


def _run(conn, resource="customers"):
    result = services.sync_start(connection=conn, resource=resource, enqueue=False)
    tasks.run_queue(result.queue.pk)
    return SyncQueue.objects.get(pk=result.queue.pk)


def _expired(sandbox):
    g = sandbox.grant()
    return g, {"access_token": g.access_token, "refresh_token": g.refresh_token, "expires_at": 1}


def test_expired_token_is_refreshed_before_the_first_call(org, make_ls_connection, sandbox):
    g, creds = _expired(sandbox)
    conn = make_ls_connection(org, credentials=creds)
    q = _run(conn)
    assert q.state == QueueState.DONE, q.last_error
    assert sandbox.refresh_calls() == 1
    conn.refresh_from_db()
    stored = conn.credentials
    assert stored["refresh_token"] != g.refresh_token  # rotated and stored
    assert stored["refresh_token"] in sandbox.refresh_tokens and g.refresh_token not in sandbox.refresh_tokens
    assert stored["expires_at"] > 1
    assert g.refresh_token not in conn.credentials_encrypted  # encrypted at rest
    assert SyncActivity.objects.filter(connection=conn, event="connection.token_refreshed").count() == 1


@pytest.fixture
def sqlite_inline_prefetch(monkeypatch):
    """The test database on SQLite is in-memory with a shared cache, where a second thread's write fails
    at once with "database table is locked" instead of waiting (a file database in WAL mode waits). On
    SQLite the engine's page prefetch therefore runs inline here; on PostgreSQL the real thread runs."""
    from django.db import connection

    from sync import engine

    if connection.vendor == "sqlite":
        monkeypatch.setattr(
            engine.QueueRunner,
            "_prefetched",
            lambda self, ctx: ([(page, self._key_page(page))] for page in self.resource.iter_pages(ctx)),
        )


def test_token_expiring_mid_sync_is_refreshed_once_and_the_sync_finishes(org, ls_conn, sandbox, sqlite_inline_prefetch):
    sandbox.knobs.expire_after_calls = 2  # pages 1-2 succeed, page 3 gets a 401
    q = _run(ls_conn)
    assert q.state == QueueState.DONE, q.last_error
    assert q.done_count == 12
    assert sandbox.refresh_calls() == 1
    assert Customer.objects.filter(connection=ls_conn).count() == 12
    assert SyncStatus.objects.get(connection=ls_conn, resource="customers").state == StatusState.SUCCESS
    ls_conn.refresh_from_db()
    assert not ls_conn.needs_reauth


def test_revoked_refresh_token_ends_in_needs_reauth_without_retrying(org, make_ls_connection, sandbox):
    _, creds = _expired(sandbox)
    conn = make_ls_connection(org, credentials=creds)
    sandbox.revoke_refresh_tokens()
    q = _run(conn)
    assert q.state == QueueState.FAILED
    assert sandbox.refresh_calls() == 1  # no retry loop
    assert not [c for c in sandbox.api_calls if "/customers" in c]  # never sent the dead token
    conn.refresh_from_db()
    assert conn.needs_reauth
    status = SyncStatus.objects.get(connection=conn, resource="customers")
    assert status.state == StatusState.FAILED and "invalid_grant" in status.last_error
    assert creds["refresh_token"] not in status.last_error
    # The next trigger refuses clearly instead of hammering the token endpoint.
    with pytest.raises(services.ConnectionUnavailable):
        services.sync_start(connection=conn, resource="customers")


def test_token_endpoint_hiccup_is_retried_and_does_not_need_reauth(org, make_ls_connection, sandbox):
    _, creds = _expired(sandbox)
    conn = make_ls_connection(org, credentials=creds)
    sandbox.knobs.fail_token_endpoint = 1
    q = _run(conn)
    assert q.state == QueueState.DONE, q.last_error
    assert sandbox.refresh_calls() == 2  # the 503, then the refresh that worked
    conn.refresh_from_db()
    assert not conn.needs_reauth


def test_401_after_revocation_refreshes_once_then_gives_up(org, ls_conn, sandbox):
    sandbox.expire_access_tokens()
    sandbox.revoke_refresh_tokens()
    q = _run(ls_conn)
    assert q.state == QueueState.FAILED
    assert sandbox.refresh_calls() == 1
    assert len([c for c in sandbox.api_calls if "/customers" in c]) == 1
    ls_conn.refresh_from_db()
    assert ls_conn.needs_reauth


def _race(conn, n=2):
    """n clients on n threads, all holding the same stale token, refresh at the same moment."""
    clients = [LightspeedClient(Connection.objects.get(pk=conn.pk)) for _ in range(n)]
    stale = clients[0]._credentials()["access_token"]
    barrier = threading.Barrier(n)
    errors = []

    def go(client):
        try:
            barrier.wait(timeout=5)
            client._refresh(stale=stale)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    return clients, stale


def test_two_concurrent_refreshes_make_one_refresh_call(org, ls_conn, sandbox):
    clients, stale = _race(ls_conn)
    assert sandbox.refresh_calls() == 1
    tokens = {c._credentials()["access_token"] for c in clients}
    assert len(tokens) == 1 and stale not in tokens
    ls_conn.refresh_from_db()
    assert ls_conn.credentials["access_token"] in tokens
    assert ls_conn.credentials["refresh_token"] in sandbox.refresh_tokens


@pytest.mark.postgres
def test_row_lock_alone_serialises_refreshes_across_workers(org, ls_conn, sandbox, monkeypatch):
    """Without the in-process lock (as between qcluster processes), the Connection row lock does it."""
    monkeypatch.setattr(ls_services, "_local_lock", lambda _pk: contextlib.nullcontext())
    clients, _ = _race(ls_conn, n=3)
    assert sandbox.refresh_calls() == 1
    assert len({c._credentials()["access_token"] for c in clients}) == 1


@pytest.mark.postgres
def test_refresh_inside_an_inline_started_run_does_not_deadlock(org, ls_conn, sandbox):
    """sync_start runs the task inline (Q_SYNC) inside its own still-open transaction; the prefetch thread's
    refresh (another database connection) must still get its row lock and finish."""
    sandbox.knobs.expire_after_calls = 1
    result = services.sync_start(connection=ls_conn, resource="customers")
    q = SyncQueue.objects.get(pk=result.queue.pk)
    assert q.state == QueueState.DONE, q.last_error
    assert sandbox.refresh_calls() == 1
