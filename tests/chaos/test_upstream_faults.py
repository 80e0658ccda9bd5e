"""Upstream fault matrix against the loopback Woo-like upstream: each fault ends in the states DESIGN.md
prescribes (invariants 3, 5, 7, 10), the cursor is safe, and nothing is raised out of the task."""

from __future__ import annotations

import email.utils
import json
import time

import pytest

from bench.upstream import customer
from connectors.sandbox.server import Response
from customers.models import Customer
from sync import services, tasks
from sync.models import LineState, QueueState, StatusState, SyncActivity, SyncQueueLine, SyncStatus
from tests.chaos.conftest import stored, truth

# In-process (only the upstream runs in a thread, and it never touches the database): plain `db` will do.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

N = 250  # pages of 100, 100, 50
OLD_CURSOR = "2000-01-01T00:00:00Z"


def full_cursor(n: int = N) -> str:
    return max(f"{customer(i)['date_modified_gmt']}Z" for i in range(1, n + 1))


def run(conn):
    """Start a run and work it through the django-q2 task entry point (which must never raise)."""
    services.status_upsert(connection=conn, resource="customers", cursor=OLD_CURSOR)
    queue = services.sync_start(connection=conn, resource="customers", enqueue=False).queue
    state = tasks.run_queue(queue.pk)
    queue.refresh_from_db()
    assert state == queue.state and not queue.is_active, (state, queue.state, queue.is_active)
    return queue


def status(conn) -> SyncStatus:
    return SyncStatus.objects.get(connection=conn, resource="customers")


def assert_done(conn, queue, n: int = N) -> None:
    assert queue.state == QueueState.DONE, (queue.state, queue.last_error, queue.fetch_error)
    assert stored(conn) == truth(n)
    st = status(conn)
    assert (st.state, st.cursor, st.last_error) == (StatusState.SUCCESS, full_cursor(n), "")


def assert_run_failed(conn, queue, *, message: str, done: int = 100) -> None:
    """The fetch failed: the run fails, what was fetched is still processed, the cursor stays."""
    assert queue.fetch_error and message in queue.fetch_error, queue.fetch_error
    assert queue.state == (QueueState.PARTIAL if done else QueueState.FAILED)
    assert queue.done_count == done and queue.action_required
    assert len(stored(conn)) == done
    st = status(conn)
    assert st.state == StatusState.FAILED and message in st.last_error
    assert st.cursor == OLD_CURSOR, "a failed run must not move the cursor"
    assert SyncActivity.objects.filter(queue=queue, event="run.failed").exists()


def on_attempts(response: Response, attempts: int | None = None):
    """A fault on one page: answer ``response`` for the first ``attempts`` requests (None = always)."""
    return lambda req, page, attempt: response if attempts is None or attempt <= attempts else None


def test_500_then_recovers(chaos_conn, upstream, fast_retries, fake_clock):
    upstream.faults[2] = on_attempts(Response.json({"code": "internal_server_error"}, 500), 2)
    queue = run(chaos_conn(N))
    assert_done(queue.connection, queue)
    assert upstream.hits[2] == 3


def test_500_forever_fails_the_run_after_max_tries(chaos_conn, upstream, fast_retries, fake_clock):
    upstream.faults[2] = on_attempts(Response.json({"code": "internal_server_error", "message": "boom"}, 500))
    conn = chaos_conn(N)
    queue = run(conn)
    assert_run_failed(conn, queue, message="HTTP 500")
    assert upstream.hits[2] == fast_retries.SYNC_HTTP_MAX_TRIES
    assert 3 not in upstream.hits, "no page after the failed one"


def test_429_retry_after_seconds(chaos_conn, upstream, fast_retries, fake_clock):
    upstream.faults[2] = on_attempts(Response.json({"code": "too_many_requests"}, 429, {"Retry-After": "7"}), 1)
    conn = chaos_conn(N)
    assert_done(conn, run(conn))
    assert 7.0 in fake_clock.sleeps, fake_clock.sleeps


def test_429_retry_after_http_date(chaos_conn, upstream, fast_retries, fake_clock):
    def fault(req, page, attempt):
        if attempt > 1:
            return None
        when = email.utils.format_datetime(
            fake_clock.now().replace(microsecond=0) + __import__("datetime").timedelta(seconds=12), usegmt=True
        )
        return Response.json({"code": "too_many_requests"}, 429, {"Retry-After": when})

    upstream.faults[3] = fault
    conn = chaos_conn(N)
    assert_done(conn, run(conn))
    assert any(11.0 <= s <= 12.0 for s in fake_clock.sleeps), fake_clock.sleeps


def test_429_forever_fails_the_run(chaos_conn, upstream, fast_retries, fake_clock):
    upstream.faults[2] = on_attempts(Response.json({"code": "too_many_requests"}, 429, {"Retry-After": "1"}))
    conn = chaos_conn(N)
    assert_run_failed(conn, run(conn), message="HTTP 429")


def test_timeout_then_recovers(chaos_conn, upstream, fast_retries, fake_clock):
    fast_retries.SYNC_HTTP_TIMEOUT = (1.0, 0.3)

    def slow(req, page, attempt):
        if attempt == 1:
            time.sleep(0.8)  # longer than the read timeout; the client gives up first
        return None

    upstream.faults[2] = slow
    conn = chaos_conn(N)
    assert_done(conn, run(conn))
    assert upstream.hits[2] == 2


def test_timeout_forever_fails_the_run(chaos_conn, upstream, fast_retries, fake_clock):
    fast_retries.SYNC_HTTP_TIMEOUT = (1.0, 0.2)
    fast_retries.SYNC_HTTP_MAX_TRIES = 2
    upstream.faults[2] = lambda req, page, attempt: time.sleep(0.5)
    conn = chaos_conn(N)
    assert_run_failed(conn, run(conn), message="timed out")


def test_html_where_json_was_expected_is_transient(chaos_conn, upstream, fast_retries, fake_clock):
    html = Response(200, b"<html><body>Maintenance mode</body></html>", {"Content-Type": "text/html; charset=UTF-8"})
    upstream.faults[2] = on_attempts(html, 1)
    conn = chaos_conn(N)
    assert_done(conn, run(conn))
    assert upstream.hits[2] == 2


def test_html_forever_fails_the_run(chaos_conn, upstream, fast_retries, fake_clock):
    html = Response(200, b"<html><body>Maintenance mode</body></html>", {"Content-Type": "text/html; charset=UTF-8"})
    upstream.faults[2] = on_attempts(html)
    conn = chaos_conn(N)
    assert_run_failed(conn, run(conn), message="expected JSON")


def test_malformed_json_fails_the_run_without_retrying(chaos_conn, upstream, fast_retries, fake_clock):
    upstream.faults[2] = on_attempts(Response(200, b'[{"id": 101, "email": ', {"Content-Type": "application/json"}))
    conn = chaos_conn(N)
    assert_run_failed(conn, run(conn), message="malformed JSON")
    assert upstream.hits[2] == 1


def test_json_object_instead_of_page_fails_the_run(chaos_conn, upstream, fast_retries, fake_clock):
    upstream.faults[1] = on_attempts(Response.json({"customers": []}))
    conn = chaos_conn(N)
    assert_run_failed(conn, run(conn), message="expected a JSON array", done=0)


def test_huge_response_is_synced(chaos_conn, upstream, fast_retries, fake_clock):
    blob = "x" * 8_000_000  # an 8 MB page: one customer carries a huge meta_data value

    def rewrite(records):
        records[0]["meta_data"] = [{"id": 1, "key": "_notes", "value": blob}]
        return records

    upstream.rewrite[1] = rewrite
    conn = chaos_conn(N)
    assert_done(conn, run(conn))
    line = SyncQueueLine.objects.get(queue__connection=conn, external_id="1")
    # Changed on purpose (issue 20): written on the fetch path, its line keeps no copy of the 8 MB record
    # (nothing will retry it).
    assert line.state == "done" and line.payload == {}
    assert Customer.objects.filter(connection=conn, external_id="1").exists()


def test_pagination_that_never_ends_is_detected(chaos_conn, upstream, fast_retries, fake_clock):
    upstream.endless = True
    conn = chaos_conn(N)
    queue = run(conn)
    assert_run_failed(conn, queue, message="past the 3 page(s) announced", done=200)
    assert max(upstream.hits) == 3


def test_pagination_that_never_ends_is_bounded_when_fetching_concurrently(
    chaos_conn, upstream, fast_retries, fake_clock
):
    upstream.endless = True
    conn = chaos_conn(N, fetch_concurrency=4)
    assert_done(conn, run(conn))
    assert max(upstream.hits) == 3


def test_pagination_that_repeats_is_detected(chaos_conn, upstream, fast_retries, fake_clock):
    upstream.repeat_next_at = 2
    conn = chaos_conn(N)
    queue = run(conn)
    assert_run_failed(conn, queue, message="repeated token", done=200)


def test_duplicate_ids_across_pages_upsert_once_with_the_latest_snapshot(
    chaos_conn, upstream, fast_retries, fake_clock
):
    def add_dupes(records):
        return records + [{**customer(i), "first_name": f"Renamed{i}"} for i in range(1, 11)]

    upstream.rewrite[2] = add_dupes
    conn = chaos_conn(N)
    queue = run(conn)
    assert_done(conn, queue)
    assert queue.total_count == N
    names = dict(
        Customer.objects.filter(connection=conn, external_id__in=[str(i) for i in range(1, 11)]).values_list(
            "external_id", "first_name"
        )
    )
    assert names == {str(i): f"Renamed{i}" for i in range(1, 11)}


def test_records_missing_required_fields_fail_only_their_lines(chaos_conn, upstream, fast_retries, fake_clock):
    def damage(records):
        del records[4]["id"]  # customer 5: cannot even be keyed
        records[5]["email"] = ""  # customer 6: the mapper refuses it
        return records

    upstream.rewrite[1] = damage
    conn = chaos_conn(N)
    queue = run(conn)
    assert (queue.state, queue.done_count, queue.failed_count) == (QueueState.PARTIAL, N - 2, 2)
    assert queue.action_required
    want = truth(N)
    del want["5"], want["6"]
    assert stored(conn) == want
    failed = {
        line.external_id: line.last_error for line in SyncQueueLine.objects.filter(queue=queue, state=LineState.FAILED)
    }
    assert "rejected by mapper: customer has no email" in failed["6"]
    assert any(ext.startswith("invalid:") and "cannot identify record" in err for ext, err in failed.items())
    st = status(conn)
    assert st.state == StatusState.FAILED and st.cursor == OLD_CURSOR and st.records_failed == 2


def test_unicode_and_10000_character_names(chaos_conn, upstream, fast_retries, fake_clock):
    fancy = 'Zoë Ñandú-Øster 漢字 🚀 \u200d O\'Brien "quoted" back\\slash'

    def names(records):
        records[6]["first_name"] = fancy  # customer 7
        records[7]["last_name"] = "L" * 10_000  # customer 8: a name is kept whole (issue 16: TextField)
        records[8]["username"] = "u" * 300  # customer 9: longer than its bounded column
        return records

    upstream.rewrite[1] = names
    conn = chaos_conn(N)
    queue = run(conn)
    assert Customer.objects.get(connection=conn, external_id="7").first_name == fancy
    assert Customer.objects.get(connection=conn, external_id="8").last_name == "L" * 10_000
    line = SyncQueueLine.objects.get(queue=queue, external_id="9")
    # Issue 16 changed this on purpose: the over-long value fails its own line naming the field (before the
    # database sees it, on every database), instead of the database refusing the row.
    assert line.state == LineState.FAILED and "username is 300 characters long; at most 255 fit" in line.last_error
    assert (queue.state, queue.done_count, queue.failed_count) == (QueueState.PARTIAL, N - 1, 1)
    assert len(json.dumps(line.payload)) > 300, "the raw snapshot is kept for a retry"
    assert status(conn).cursor == OLD_CURSOR
