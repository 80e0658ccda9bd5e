"""sync/services/state.py is where a line changes state: after every kind of move (insert, claim, done,
failed, retry, reap, newer snapshot, queue retry, force-done, cancel, the fetcher's bulk insert of done
lines) the queue's counters equal a fresh count of its lines. Runs on both databases (the PostgreSQL leg
of .ci/run runs it again); the statement-count checks are PostgreSQL's. The last test fails if someone
writes a counter update or a line state change by hand outside the state module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

from sync import engine, services
from sync.models import LineState, QueueState, SyncActivity, SyncQueueLine
from tests.fakes import FakeUpstream
from tests.sync.conftest import assert_counters_match

ROOT = Path(__file__).resolve().parents[2]
make = FakeUpstream.make


def pushed(conn, records, **kw):
    """A webhook-lane queue holding ``records`` as draft lines (no worker)."""
    return services.sync_enqueue_records(connection=conn, resource="customers", records=records, enqueue=False, **kw)


def states(queue) -> dict[str, str]:
    return dict(SyncQueueLine.objects.filter(queue=queue).values_list("external_id", "state"))


def test_inserting_lines_counts_them_and_an_unidentifiable_record_fails_its_own_line(fake_conn):
    q = pushed(fake_conn, [make(1), make(2), {"no": "id"}])
    assert_counters_match(q)
    assert (q.total_count, q.draft_count, q.failed_count) == (3, 2, 1) and q.action_required
    assert SyncActivity.objects.filter(queue=q, event="line.failed").count() == 1
    # The same snapshots again move nothing; a newer one of a draft line stays draft.
    pushed(fake_conn, [make(1), make(2, first_name="Newer")])
    assert_counters_match(q)
    assert q.total_count == 3 and q.draft_count == 2


def test_claim_then_done_failed_and_retry_keep_the_counters(fake_conn, fake_clock, settings):
    settings.SYNC_MAX_ATTEMPTS = 3
    records = [make(1), make(2, email=""), make(3, boom=True), make(4)]  # 2: MappingError, 3: mapper bug
    q = pushed(fake_conn, records)
    runner = engine.QueueRunner(q)
    claimed = runner.claim(10)
    assert len(claimed) == 4
    assert_counters_match(q)
    assert q.processing_count == 4 and q.draft_count == 0 and not q.action_required

    runner.process_batch(claimed)
    assert_counters_match(q)
    assert states(q) == {"1": "done", "2": "failed", "3": "draft", "4": "done"}
    assert q.action_required  # a line entered failed
    failed_row = SyncActivity.objects.get(queue=q, event="line.failed")
    assert failed_row.line_id is not None and failed_row.data == {"attempts": 1, "external_id": "2"}


def test_a_line_claimed_by_nobody_else_is_not_moved_twice(fake_conn):
    """The state condition is a compare-and-set: a move from a state the line is no longer in moves (and
    counts) nothing."""
    q = pushed(fake_conn, [make(1), make(2)])
    with transaction.atomic():
        services.lock_queue(q.pk)
        assert services.lines_move(q.pk, from_state=LineState.DONE, to_state=LineState.FAILED) == 0
        moved = services.lines_move(q.pk, from_state=LineState.DRAFT, to_state=LineState.DONE, lines=Q(external_id="1"))
    assert moved == 1
    assert_counters_match(q)
    assert (q.draft_count, q.done_count, q.failed_count) == (1, 1, 0) and not q.action_required


def test_the_reaper_moves_expired_leases_back_or_to_failed(fake_conn, fake_clock, settings, monkeypatch):
    monkeypatch.setattr(services, "enqueue_queue", lambda queue_id: "no worker")
    settings.SYNC_MAX_ATTEMPTS = 2
    q = pushed(fake_conn, [make(1), make(2)])
    runner = engine.QueueRunner(q)
    assert len(runner.claim(1)) == 1  # line 1, attempt 1 ... and the worker dies
    fake_clock.advance(settings.SYNC_LEASE_SECONDS + 1)
    assert services.lines_reap()["returned"] == 1
    assert_counters_match(q)
    fake_clock.advance(3600)
    runner.claim(1)  # attempt 2, the last one ... dies again
    fake_clock.advance(settings.SYNC_LEASE_SECONDS + 1)
    assert services.lines_reap()["failed"] == 1
    assert_counters_match(q)
    assert states(q)["1"] == LineState.FAILED and q.action_required


def test_retry_force_done_and_cancel_keep_the_counters(fake_conn, fake_kind, fake_clock, monkeypatch):
    monkeypatch.setattr(services, "enqueue_queue", lambda queue_id: "no worker")
    fake_kind.__init__(5)
    fake_kind.records[1]["email"] = ""  # id 2 fails for good
    q = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    engine.run_queue(q.pk)
    assert_counters_match(q)
    assert q.state == QueueState.PARTIAL and q.failed_count == 1

    services.queue_retry(queue=q, enqueue=False)
    assert_counters_match(q)
    assert (q.failed_count, q.draft_count, q.done_count) == (0, 1, 4) and not q.action_required

    services.queue_force_done(queue=q)
    assert_counters_match(q)
    assert (q.state, q.cancelled_count, q.draft_count) == (QueueState.DONE, 1, 0)

    other = pushed(fake_conn, [make(7), make(8)])
    services.queue_cancel(queue=other)
    assert_counters_match(other)
    assert (other.state, other.cancelled_count) == (QueueState.CANCELLED, 2)


def test_a_newer_snapshot_moves_a_done_line_back_to_draft(fake_conn):
    q = pushed(fake_conn, [make(1)])
    engine.QueueRunner(q).process_available()
    assert_counters_match(q)
    assert q.done_count == 1
    pushed(fake_conn, [make(1, first_name="Changed")])
    assert_counters_match(q)
    assert (q.done_count, q.draft_count) == (0, 1)


def test_the_fetcher_inserts_done_lines_in_bulk_and_counts_them(fake_conn, fake_kind):
    fake_kind.__init__(35)
    fake_kind.records[4]["email"] = ""  # a MappingError on fetch: inserted failed, with the done ones
    q = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    engine.run_queue(q.pk)
    assert_counters_match(q)
    assert (q.total_count, q.done_count, q.failed_count) == (35, 34, 1) and q.action_required


@pytest.mark.postgres
def test_a_move_is_one_statement_and_a_group_one_counter_update_on_postgresql(fake_conn, fake_kind):
    q = pushed(fake_conn, [make(1), make(2)])
    with transaction.atomic(), CaptureQueriesContext(db_connection) as moved:
        services.lines_move(q.pk, from_state=LineState.DRAFT, to_state=LineState.PROCESSING)
    statements = [query["sql"] for query in moved.captured_queries if not query["sql"].startswith("SAVEPOINT")]
    assert len(statements) == 1 and statements[0].startswith("WITH moved AS (UPDATE")
    assert_counters_match(q)

    # The fetcher's group of 30 records: however many lines, one statement inserts its done lines, counts
    # them into the queue's counters and renews the fetch lease with the group's progress.
    fake_kind.__init__(30)
    run = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    runner = engine.QueueRunner(run)
    runner._take_fetch_lease()
    pages = [fake_kind_page(fake_kind, token) for token in range(3)]
    with CaptureQueriesContext(db_connection) as stored:
        runner._store_pages(pages)
    statements = [s["sql"] for s in stored.captured_queries]
    queue_updates = [s for s in statements if 'UPDATE "sync_syncqueue" SET' in s]
    assert len(queue_updates) == 1, queue_updates
    assert queue_updates[0].startswith('WITH l0 AS (INSERT INTO "sync_syncqueueline"')
    assert '"done_count" = ' in queue_updates[0] and '"fetch_lease_until" = ' in queue_updates[0]
    assert not [s for s in statements if s.startswith('INSERT INTO "sync_syncqueueline"')]
    assert_counters_match(run)
    assert run.done_count == 30


def fake_kind_page(upstream, token):
    from connectors.base import FetchContext
    from tests import fakes

    ctx = FetchContext(client=None, cursor="", token=token, full_scan=False, params={})
    return fakes.connector.resources["customers"].fetch_page(ctx)


# --- nobody moves lines or counters by hand ---------------------------------------------------------------
COUNTERS = ("total", "draft", "processing", "done", "failed", "cancelled")
STATE_MODULE = ROOT / "sync" / "services" / "state.py"


def _hand_written(path: Path) -> list[str]:
    """Counter increments (``F("done_count")``, ``done_count=`` in an update) and ``state=`` updates of
    lines, anywhere but the state module."""
    source = path.read_text()
    found = [
        f"{path.relative_to(ROOT)}: {m.group(0)}"
        for m in re.finditer(r"F\(\s*[\"'](?:{})_count[\"']\s*\)".format("|".join(COUNTERS)), source)
    ]
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update"):
            continue
        names = {kw.arg for kw in node.keywords if kw.arg}
        receiver = ast.get_source_segment(source, node.func.value) or ""
        if names & {f"{c}_count" for c in COUNTERS} or ("state" in names and "SyncQueueLine" in receiver):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {receiver[:60]}.update({', '.join(sorted(names))})")
    return found


def test_no_line_state_or_counter_is_changed_outside_the_state_module():
    files = [
        p
        for folder in ("sync", "connectors", "customers", "commerce")
        for p in (ROOT / folder).rglob("*.py")
        if p != STATE_MODULE and "migrations" not in p.parts
    ]
    assert len(files) > 20
    offenders = [hit for path in files for hit in _hand_written(path)]
    assert not offenders, "move lines with sync.services.lines_move / lines_insert:\n" + "\n".join(offenders)


def test_the_guard_sees_a_hand_written_increment(tmp_path, monkeypatch):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from django.db.models import F\n"
        "def f(q, n):\n"
        "    SyncQueue.objects.filter(pk=q).update(done_count=F('done_count') + n)\n"
        "    SyncQueueLine.objects.filter(queue_id=q).update(state='done')\n"
    )
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert len(_hand_written(bad)) == 3


def test_a_group_stored_without_a_fetch_lease_counts_its_lines_but_saves_no_progress(fake_conn, fake_kind):
    """The lines a group inserts are counted whether or not the runner holds the fetch lease; the paging
    progress (token, pages) is saved only with the lease."""
    fake_kind.__init__(30)
    run = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    runner = engine.QueueRunner(run)  # no _take_fetch_lease()
    runner._store_pages([fake_kind_page(fake_kind, token) for token in range(3)])
    run.refresh_from_db()
    assert_counters_match(run)
    assert run.done_count == 30 and run.pages_fetched == 0 and run.fetch_token in (None, "", {})
