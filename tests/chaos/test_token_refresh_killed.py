"""SIGKILL a real worker in the middle of a Lightspeed OAuth token refresh, against the Lightspeed sandbox
on loopback (refresh tokens rotate there as on Lightspeed: a refresh revokes the old refresh token).

- Killed before the refresh is sent, or after the new pair is committed: recovery (the reaper a lease
  later) refreshes at most once more and reaches the retailer's truth exactly.
- Killed after the token endpoint answered but before the new pair was stored: the rotated token is gone
  with the process (no write can be atomic with a remote answer). The honest outcome: the next run is
  refused with ``invalid_grant`` once (no retry loop), the connection needs re-authorisation, SyncStatus
  FAILED with a message saying so, every line fetched before the kill is still written; after the OAuth
  flow reconnects the retailer, the next sync reaches the truth.
- Two worker processes refreshing the same expired token at once: one refresh, both use its token.
"""

from __future__ import annotations

import os
import signal
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from connectors.lightspeed import services as ls_services
from connectors.lightspeed.sandbox import LightspeedSandbox
from connectors.models import Connection
from connectors.sandbox.server import serve
from sync import services
from sync.engine import run_queue
from sync.models import LineState, QueueState, StatusState, SyncActivity, SyncQueue, SyncQueueLine, SyncStatus
from tests.chaos.conftest import start_worker

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CUSTOMERS, PRODUCTS, PAGE = 57, 23, 10  # 6 pages of customers (the last short), then the empty page


class SlowTokenSandbox(LightspeedSandbox):
    """The token endpoint takes a moment, so a second refresher really waits on the first; ``seen`` (a
    path) is created when a token request arrives."""

    token_delay = 0.0
    seen = None

    def _token(self, req):
        if self.seen is not None:
            self.seen.touch()
        if self.token_delay:
            import time

            time.sleep(self.token_delay)
        return super()._token(req)


@pytest.fixture
def sandbox(monkeypatch):
    sb = SlowTokenSandbox(customers=CUSTOMERS, products=PRODUCTS, customer_groups=2)
    with serve(sb.app()) as base:
        sb.base = base
        sb.env = {
            "LIGHTSPEED_PAGE_SIZE": str(PAGE),
            "LIGHTSPEED_CLIENT_ID": sb.client_id,
            "LIGHTSPEED_CLIENT_SECRET": sb.client_secret,
            "LIGHTSPEED_AUTHORIZE_URL": f"{base}/connect",
            "LIGHTSPEED_TOKEN_URL": f"{base}/api/1.0/token",
            "LIGHTSPEED_API_BASE_URL": f"{base}/api/2.0/",
            "LIGHTSPEED_REDIRECT_URI": "http://testserver/connectors/lightspeed/oauth/callback/",
        }
        for key, value in sb.env.items():
            monkeypatch.setenv(key, value)
        yield sb


@pytest.fixture
def ls_conn(org, make_connection, sandbox):
    def make(*, expired: bool) -> Connection:
        g = sandbox.grant()
        return make_connection(
            org,
            kind="lightspeed",
            base_url=f"{sandbox.base}/api/2.0/",
            external_account_id=sandbox.domain_prefix,
            credentials={
                "access_token": g.access_token,
                "refresh_token": g.refresh_token,
                "expires_at": 1 if expired else g.expires,
            },
            config={"domain_prefix": sandbox.domain_prefix, "auth": "oauth"},
        )

    return make


def truth(sb, collection: str) -> dict[str, str]:
    field = {"customers": "email", "products": "sku"}[collection]
    return {r["id"]: r[field] for r in sb.live(collection)}


def stored(conn, collection: str) -> dict[str, str]:
    from commerce.models import Product
    from customers.models import Customer

    model, field = {"customers": (Customer, "email"), "products": (Product, "sku")}[collection]
    rows = list(model.objects.filter(connection=conn).values_list("external_id", field))
    assert len(rows) == len({ext for ext, _ in rows}), "duplicate rows for one external id"
    return dict(rows)


def top_version(sb, collection: str) -> str:
    return str(max(r["version"] for r in sb.store[collection].values()))


def reauthorise(sb, staff, org) -> Connection:
    """What the retailer does from the reconnect link: the OAuth flow against the sandbox."""
    location = ls_services.oauth_start(user=staff, organization=org, session_key="s1", connection_name="Main store")
    answer = requests.get(location, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    query = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
    return ls_services.oauth_complete(
        user=staff, state=query["state"], code=query["code"], domain_prefix=query["domain_prefix"], session_key="s1"
    )


def assert_success(conn, queue, sb, *, resource="customers", crashed_lines=frozenset()):
    queue.refresh_from_db()
    n = len(truth(sb, resource))
    assert (queue.state, queue.is_active) == (QueueState.DONE, False), (queue.state, queue.last_error)
    assert queue.done_count == queue.total_count == n
    assert stored(conn, resource) == truth(sb, resource)
    attempts = dict(SyncQueueLine.objects.filter(queue=queue).values_list("external_id", "attempts"))
    assert len(attempts) == n
    assert {ext for ext, a in attempts.items() if a == 2} == set(crashed_lines), "a crash counts once, on its lines"
    assert max(attempts.values()) <= 2
    status = SyncStatus.objects.get(connection=conn, resource=resource)
    assert status.state == StatusState.SUCCESS and status.last_queue_id == queue.pk, status.last_error
    assert status.records_synced == n and status.last_error == ""
    assert status.cursor == top_version(sb, resource)
    conn.refresh_from_db()
    assert not conn.needs_reauth
    assert conn.credentials["refresh_token"] in sb.refresh_tokens, "the stored refresh token is the live one"


# (kill point, when the refresh happens, does the stored refresh token survive the kill)
POINTS = [
    pytest.param("refresh-send", "start", True, id="before-refresh-sent"),
    pytest.param("refresh-send", "mid-sync", True, id="before-refresh-sent-mid-sync"),
    pytest.param("refresh-answered", "start", False, id="refresh-answered-not-stored"),
    pytest.param("refresh-answered", "mid-sync", False, id="refresh-answered-not-stored-mid-sync"),
    pytest.param("refresh-stored", "mid-sync", True, id="refresh-stored-not-used"),
]


@pytest.mark.parametrize(("point", "when", "survives"), POINTS)
def test_sigkill_during_token_refresh_then_recover(
    point, when, survives, ls_conn, sandbox, staff, org, fast_retries, jump_past_leases
):
    conn = ls_conn(expired=when == "start")
    if when == "mid-sync":
        sandbox.knobs.expire_after_calls = 2  # pages 1-2 succeed, page 3 answers 401: refresh mid-run
    original = conn.credentials
    queue = services.sync_start(connection=conn, resource="customers", enqueue=False).queue

    proc = start_worker(queue.pk, CHAOS_KILL_AT=f"{point}:1", **sandbox.env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, out, err[-2000:])

    queue.refresh_from_db()
    assert queue.is_active, "a killed run must not look settled"
    assert sandbox.refresh_calls() == (0 if point == "refresh-send" else 1)
    conn.refresh_from_db()
    kept = conn.credentials["refresh_token"]
    if point == "refresh-stored":
        assert kept != original["refresh_token"] and kept in sandbox.refresh_tokens
    else:
        assert kept == original["refresh_token"], "the refresh transaction rolled back with the process"
        assert (kept in sandbox.refresh_tokens) is survives
    crashed = set(
        SyncQueueLine.objects.filter(queue=queue, state=LineState.PROCESSING).values_list("external_id", flat=True)
    )
    fetched = set(SyncQueueLine.objects.filter(queue=queue).values_list("external_id", flat=True))
    # At the start the refresh precedes any API call; mid-sync it follows two pages and a 401 (the pages'
    # lines may or may not be committed yet: the prefetch thread runs ahead of the writes).
    pages_asked = len([c for c in sandbox.api_calls if "/customers" in c])
    assert pages_asked == 0 if when == "start" else pages_asked >= 3
    assert not fetched or when == "mid-sync"
    assert set(stored(conn, "customers")) <= fetched

    jump_past_leases()
    reaped = services.lines_reap()  # returns leases to draft and resumes the queue (inline django-q2)
    assert reaped["returned"] == len(crashed) and reaped["failed"] == 0
    assert reaped["resumed"] == 1
    run_queue(queue.pk)  # a re-delivered task for the settled queue: harmless
    queue.refresh_from_db()
    assert queue.process_runs == 2, "the killed run and the recovery run"

    if survives:
        assert_success(conn, queue, sandbox, crashed_lines=crashed)
        assert sandbox.refresh_calls() == 1, "one refresh in all: none wasted, none repeated"
        assert SyncActivity.objects.filter(connection=conn, event="connection.token_refreshed").count() == 1
        return

    # The rotated token died with the worker: refused once, no retry loop, nothing fetched is lost.
    assert sandbox.refresh_calls() == 2
    assert (queue.state, queue.is_active) == (QueueState.FAILED if not fetched else QueueState.PARTIAL, False)
    assert queue.done_count == queue.total_count == len(fetched) and queue.failed_count == 0
    assert stored(conn, "customers") == {k: v for k, v in truth(sandbox, "customers").items() if k in fetched}
    conn.refresh_from_db()
    assert conn.needs_reauth
    status = SyncStatus.objects.get(connection=conn, resource="customers")
    assert status.state == StatusState.FAILED and status.last_queue_id == queue.pk
    assert "invalid_grant" in status.last_error and "reconnect" in status.last_error.lower()
    assert "refused the stored refresh token" in status.last_error, status.last_error
    assert "answer was never stored" in status.last_error
    assert status.cursor == "", "the cursor does not move on a failed run"
    assert original["refresh_token"] not in status.last_error and original["refresh_token"] not in conn.last_error
    with pytest.raises(services.ConnectionUnavailable):
        services.sync_start(connection=conn, resource="customers", enqueue=False)

    conn = reauthorise(sandbox, staff, org)
    assert conn.pk == queue.connection_id and not conn.needs_reauth
    again = services.sync_start(connection=conn, resource="customers", enqueue=False).queue
    proc = start_worker(again.pk, **sandbox.env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "state=done" in out
    assert_success(conn, again, sandbox)
    assert sandbox.refresh_calls() == 2, "the new token was used as issued"


def test_two_worker_processes_refresh_the_rotating_token_once(ls_conn, sandbox, fast_retries, tmp_path):
    """Both workers reach the refresh with the same expired token at the same moment; the Connection row
    lock lets one refresh, and the other, once it has the lock, finds the new token and uses it."""
    conn = ls_conn(expired=True)
    sandbox.token_delay = 0.3  # the first refresher holds the lock that long: the second really waits
    queues = {
        r: services.sync_start(connection=conn, resource=r, enqueue=False).queue for r in ("customers", "products")
    }
    env = {**sandbox.env, "CHAOS_REFRESH_BARRIER": f"{tmp_path}:2"}
    procs = [start_worker(q.pk, **env) for q in queues.values()]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
    assert len(list(tmp_path.iterdir())) == 2, "both workers reached the refresh"

    assert sandbox.refresh_calls() == 1, "one refresh between the two processes: the rotating token not burned"
    for resource, queue in queues.items():
        assert_success(conn, queue, sandbox, resource=resource)
    assert SyncActivity.objects.filter(connection=conn, event="connection.token_refreshed").count() == 1


def test_refresher_killed_while_another_waits_on_the_lock(
    ls_conn, sandbox, staff, org, fast_retries, jump_past_leases, tmp_path
):
    """Worker A refreshes and is killed after the token endpoint answered; worker B was waiting on the row
    lock with the same token. B must not loop: it is refused once, the connection needs re-authorisation,
    and after reconnecting both resources reach the truth (A's queue resumed by the reaper)."""
    conn = ls_conn(expired=True)
    sandbox.token_delay = 0.3
    a = services.sync_start(connection=conn, resource="products", enqueue=False).queue
    b = services.sync_start(connection=conn, resource="customers", enqueue=False).queue
    (tmp_path / "barrier").mkdir()
    sandbox.seen = tmp_path / "token-requested"
    barrier = {"CHAOS_REFRESH_BARRIER": f"{tmp_path / 'barrier'}:2"}
    proc_a = start_worker(a.pk, CHAOS_KILL_AT="refresh-answered:1", **barrier, **sandbox.env)
    # B asks only once A's token request is in flight, i.e. while A holds the row lock.
    proc_b = start_worker(b.pk, CHAOS_REFRESH_AFTER=str(sandbox.seen), **barrier, **sandbox.env)
    out_a, err_a = proc_a.communicate(timeout=60)
    out_b, err_b = proc_b.communicate(timeout=60)
    assert proc_a.returncode == -signal.SIGKILL, (proc_a.returncode, err_a[-2000:])
    assert proc_b.returncode == 0, err_b[-2000:]

    assert sandbox.refresh_calls() == 2, "A's refresh (answer lost), then B's one refused try"
    b.refresh_from_db()
    assert (b.state, b.total_count) == (QueueState.FAILED, 0)
    conn.refresh_from_db()
    assert conn.needs_reauth
    status = SyncStatus.objects.get(connection=conn, resource="customers")
    assert status.state == StatusState.FAILED and "invalid_grant" in status.last_error

    conn = reauthorise(sandbox, staff, org)
    assert conn.pk == a.connection_id and not conn.needs_reauth
    jump_past_leases()
    reaped = services.lines_reap()  # A's queue: its fetch lease lapsed, resumed inline with the new token
    assert reaped["resumed"] == 1
    assert_success(conn, SyncQueue.objects.get(pk=a.pk), sandbox, resource="products")
    again = services.sync_start(connection=conn, resource="customers", enqueue=False).queue
    assert run_queue(again.pk) == QueueState.DONE
    assert_success(conn, again, sandbox, resource="customers")
    assert sandbox.refresh_calls() == 2, "the reconnected token was used as issued"


# Both SIGSTOP tests below were flaky under CPU load until the chaos worker froze itself with a
# thread-directed signal (tests/chaos/worker.py _die): the refresh runs in the engine's prefetch thread, and
# a process-directed SIGSTOP let that thread send A's token request before the process stopped.
def test_frozen_refresher_holds_the_lock_others_wait_then_refresh_once(
    ls_conn, sandbox, fast_retries, jump_past_leases, tmp_path
):
    """Worker A freezes (SIGSTOP: a hung process) holding the Connection row lock, just before sending its
    refresh. Worker B, with the same expired token, waits on the lock instead of refreshing past it (which
    would burn the token A is about to send). Once A is killed its transaction rolls back, B refreshes
    once and finishes; A's queue is resumed by the reaper and finishes with B's token."""
    conn = ls_conn(expired=True)
    a = services.sync_start(connection=conn, resource="products", enqueue=False).queue
    b = services.sync_start(connection=conn, resource="customers", enqueue=False).queue
    proc_a = start_worker(
        a.pk, app_name="chaos-A", CHAOS_KILL_AT="refresh-send:1", CHAOS_SIGNAL="SIGSTOP", **sandbox.env
    )
    try:
        deadline = time.monotonic() + 30
        while not _stopped(proc_a.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _stopped(proc_a.pid), "A froze at the refresh"
        assert sandbox.refresh_calls() == 0, "A froze before its token request left"
        proc_b = start_worker(b.pk, app_name="chaos-B", **sandbox.env)
        deadline = time.monotonic() + 30
        while not _waits_on_connection_lock("chaos-B", "chaos-A") and time.monotonic() < deadline:
            if proc_b.poll() is not None:
                break
            time.sleep(0.05)
        assert _waits_on_connection_lock("chaos-B", "chaos-A"), ("B waits on A's row lock", _sessions())
        time.sleep(0.5)
        assert proc_b.poll() is None and _waits_on_connection_lock("chaos-B", "chaos-A")
        assert sandbox.refresh_calls() == 0
    finally:
        proc_a.kill()
        proc_a.wait(timeout=10)
    out, err = proc_b.communicate(timeout=60)
    assert proc_b.returncode == 0 and "state=done" in out, err[-2000:]
    assert sandbox.refresh_calls() == 1
    assert_success(conn, b, sandbox, resource="customers")
    jump_past_leases()
    assert services.lines_reap()["resumed"] == 1  # A's run: its fetch lease lapsed
    assert_success(conn, SyncQueue.objects.get(pk=a.pk), sandbox, resource="products")
    assert sandbox.refresh_calls() == 1, "A's resumed run used B's token"


def test_refresher_hung_past_the_lock_limit_loses_the_lock_and_wakes_to_the_new_token(ls_conn, sandbox, fast_retries):
    """Worker A hangs (SIGSTOP) holding the row lock just before its token call, longer than
    LIGHTSPEED_REFRESH_LOCK_IDLE_SECONDS: PostgreSQL ends A's session, which frees the lock, and worker B
    refreshes. When A wakes it sends the token B has spent, is refused, finds B's stored pair and uses it:
    both runs finish and the connection is not marked needs-reauth."""
    conn = ls_conn(expired=True)
    a = services.sync_start(connection=conn, resource="products", enqueue=False).queue
    b = services.sync_start(connection=conn, resource="customers", enqueue=False).queue
    env = {**sandbox.env, "LIGHTSPEED_REFRESH_LOCK_IDLE_SECONDS": "1.5"}
    proc_a = start_worker(a.pk, CHAOS_KILL_AT="refresh-send:1", CHAOS_SIGNAL="SIGSTOP", **env)
    try:
        deadline = time.monotonic() + 30
        while not _stopped(proc_a.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _stopped(proc_a.pid), "A froze at the refresh"
        assert sandbox.refresh_calls() == 0, "A froze before its token request left"
        # B finishing while A is still frozen proves the lock was released: A's session is gone.
        out_b, err_b = start_worker(b.pk, **env).communicate(timeout=60)
        assert "state=done" in out_b, err_b[-2000:]
        assert _stopped(proc_a.pid) and sandbox.refresh_calls() == 1
    finally:
        os.kill(proc_a.pid, signal.SIGCONT)
    out_a, err_a = proc_a.communicate(timeout=60)
    assert proc_a.returncode == 0 and "state=done" in out_a, err_a[-2000:]
    assert sandbox.refresh_calls() == 2, "A's one refused call with the spent token, no more"
    assert_success(conn, b, sandbox, resource="customers")
    assert_success(conn, SyncQueue.objects.get(pk=a.pk), sandbox, resource="products")


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] == "T"


def _waits_on_connection_lock(waiter: str, holder: str) -> bool:
    """A session of the worker named ``waiter`` is blocked, locking a Connection row, by a session of the
    worker named ``holder`` (application names given to start_worker; no other session counts)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT EXISTS (
                SELECT 1 FROM pg_stat_activity w
                JOIN pg_stat_activity h ON h.pid = ANY (pg_blocking_pids(w.pid))
                WHERE w.datname = current_database() AND w.application_name = %s AND h.application_name = %s
                  AND w.wait_event_type = 'Lock'
                  AND EXISTS (
                      SELECT 1 FROM pg_locks l
                      WHERE l.pid = w.pid AND l.locktype = 'tuple'
                        AND l.relation = 'connectors_connection'::regclass
                  )
            )
            """,
            [waiter, holder],
        )
        return cur.fetchone()[0]


def _sessions() -> list[tuple]:
    """Every session of the test database, for an assertion message."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT pid, application_name, state, wait_event_type, pg_blocking_pids(pid), left(query, 80) "
            "FROM pg_stat_activity WHERE datname = current_database() ORDER BY pid"
        )
        return cur.fetchall()
