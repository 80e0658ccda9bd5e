"""A refresh whose answer never got stored (the worker died between Lightspeed's answer and our commit):
the rotated refresh token is gone. Recovery is honest: one refused refresh (no loop), needs-reauth,
SyncStatus FAILED saying what happened, and after the OAuth flow the next sync is complete.
The real SIGKILL version runs in tests/chaos/test_token_refresh_killed.py (PostgreSQL); this one runs on
both databases, the crash raised in-process right after the token endpoint answered."""

import threading
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import requests

from connectors.base import AuthError
from connectors.lightspeed import auth
from connectors.lightspeed import services as ls_services
from connectors.models import Connection
from customers.models import Customer
from sync import services, tasks
from sync.models import QueueState, StatusState, SyncQueue, SyncStatus


@pytest.fixture
def org(transactional_db):
    from sync.models import Organization

    return Organization.objects.create(name="Acme", slug="acme")


class WorkerDied(BaseException):
    """Stands for the SIGKILL: nothing after it runs in that worker."""


def _lose_the_answer(conn, monkeypatch) -> None:
    real = auth.refresh

    def answered_then_died(**kwargs):
        real(**kwargs)  # Lightspeed has rotated the token and answered with a new pair...
        raise WorkerDied()  # ...which nobody stores

    monkeypatch.setattr(auth, "refresh", answered_then_died)
    with pytest.raises(WorkerDied):
        ls_services.token_refresh(connection_id=conn.pk, stale_access_token=conn.credentials["access_token"])
    monkeypatch.setattr(auth, "refresh", real)


def _run(conn, resource="customers"):
    result = services.sync_start(connection=conn, resource=resource, enqueue=False)
    tasks.run_queue(result.queue.pk)
    return SyncQueue.objects.get(pk=result.queue.pk)


def _reauthorise(sandbox, user, organization) -> Connection:
    location = ls_services.oauth_start(user=user, organization=organization, session_key="s1")
    answer = requests.get(location, allow_redirects=False, timeout=5)
    query = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
    return ls_services.oauth_complete(
        user=user, state=query["state"], code=query["code"], domain_prefix=query["domain_prefix"], session_key="s1"
    )


def test_lost_refresh_answer_ends_in_needs_reauth_then_reconnect_completes(
    org, staff, make_ls_connection, sandbox, monkeypatch
):
    g = sandbox.grant()
    creds = {"access_token": g.access_token, "refresh_token": g.refresh_token, "expires_at": 1}
    conn = make_ls_connection(org, credentials=creds)
    _lose_the_answer(conn, monkeypatch)
    conn.refresh_from_db()
    assert conn.credentials == creds, "nothing of the lost refresh was stored"
    assert g.refresh_token not in sandbox.refresh_tokens and sandbox.refresh_calls() == 1

    q = _run(conn)
    assert q.state == QueueState.FAILED
    assert sandbox.refresh_calls() == 2, "refused once, not retried"
    assert not [c for c in sandbox.api_calls if "/customers" in c]
    conn.refresh_from_db()
    assert conn.needs_reauth
    status = SyncStatus.objects.get(connection=conn, resource="customers")
    assert status.state == StatusState.FAILED
    assert "refused the stored refresh token (invalid_grant)" in status.last_error
    assert "answer was never stored" in status.last_error and "Reconnect the retailer" in status.last_error
    assert g.refresh_token not in status.last_error and g.refresh_token not in conn.last_error
    assert not Customer.objects.filter(connection=conn).exists()

    conn = _reauthorise(sandbox, staff, org)
    assert not conn.needs_reauth and conn.credentials["refresh_token"] in sandbox.refresh_tokens
    q = _run(conn)
    assert q.state == QueueState.DONE, q.last_error
    assert set(Customer.objects.filter(connection=conn).values_list("external_id", flat=True)) == {
        r["id"] for r in sandbox.live("customers")
    }
    assert Customer.objects.filter(connection=conn).count() == len(sandbox.live("customers"))
    assert SyncStatus.objects.get(connection=conn, resource="customers").state == StatusState.SUCCESS
    assert sandbox.refresh_calls() == 2, "the reconnected token is used as issued"


def test_a_refused_code_exchange_keeps_its_own_message(sandbox):
    with pytest.raises(AuthError) as caught:
        auth.exchange_code(code="code_never_issued", domain_prefix=sandbox.domain_prefix)
    assert caught.value.code == "invalid_grant"
    assert "refused the grant" in str(caught.value) and "refresh token" not in str(caught.value)


def test_refused_refresh_uses_the_pair_another_worker_stored_meanwhile(org, make_ls_connection, sandbox, monkeypatch):
    """Between our read and our token call another worker refreshed and stored a new pair: across processes
    on SQLite (no row lock), or on PostgreSQL after our session was ended (a hung worker past
    LIGHTSPEED_REFRESH_LOCK_IDLE_SECONDS, simulated with pg_terminate_backend). Lightspeed refuses our
    spent token; we take the stored pair instead of marking a healthy connection needs-reauth."""
    from django.db import connection as db

    g = sandbox.grant()
    creds = {"access_token": g.access_token, "refresh_token": g.refresh_token, "expires_at": 1}
    conn = make_ls_connection(org, credentials=creds)
    real = auth.refresh
    theirs: dict = {}

    def another_worker_first(**kwargs):
        if db.vendor == "postgresql":
            with db.cursor() as cur:  # our session ends (as PostgreSQL ends a hung one), freeing the lock
                cur.execute("SELECT pg_backend_pid()")
                pid = cur.fetchone()[0]
            with psycopg.connect(_dsn(db), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

        def other():
            other_conn = Connection.objects.get(pk=conn.pk)
            theirs.update(real(**kwargs).as_credentials())
            other_conn.credentials = theirs
            other_conn.save()
            db.close()

        t = threading.Thread(target=other)
        t.start()
        t.join(timeout=30)
        return real(**kwargs)  # our own call, with the token the other worker just spent

    monkeypatch.setattr(auth, "refresh", another_worker_first)
    got = ls_services.token_refresh(connection_id=conn.pk, stale_access_token=g.access_token)
    assert theirs and got["refresh_token"] == theirs["refresh_token"] and got["access_token"] == theirs["access_token"]
    assert sandbox.refresh_calls() == 2 and theirs["refresh_token"] in sandbox.refresh_tokens
    conn = Connection.objects.get(pk=conn.pk)
    assert not conn.needs_reauth and conn.credentials["refresh_token"] == theirs["refresh_token"]


def test_a_truly_revoked_token_is_still_refused_after_the_second_look(org, make_ls_connection, sandbox):
    g = sandbox.grant()
    conn = make_ls_connection(
        org, credentials={"access_token": g.access_token, "refresh_token": g.refresh_token, "expires_at": 1}
    )
    sandbox.revoke_refresh_tokens()
    with pytest.raises(AuthError) as caught:
        ls_services.token_refresh(connection_id=conn.pk, stale_access_token=g.access_token)
    assert caught.value.code == "invalid_grant" and sandbox.refresh_calls() == 1


def _dsn(db) -> str:
    s = db.settings_dict
    auth_part = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth_part}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
