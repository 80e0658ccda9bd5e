"""The full scan's "which rows did it not see" (sinks.missing_rows) stays linear whatever PostgreSQL's statistics
say. The queue's lines are always new to the planner (and a first sync's rows are too, until autovacuum
analyzes them), so it may expect a few lines where the scan wrote thousands and rescan all of them for every
row. sinks.without_nested_loops leaves it a hash or merge anti-join; both call sites use it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Customer
from sync import services, sinks
from sync.models import QueueState, SyncQueue
from tests import fakes

pytestmark = pytest.mark.postgres


@pytest.fixture
def marks_missing(monkeypatch):
    monkeypatch.setattr(fakes.FakeCustomers, "mark_missing_deleted", True)


def _full_scan(conn) -> SyncQueue:
    queue = services.sync_start(connection=conn, resource="customers", full_scan=True).queue
    queue.refresh_from_db()
    assert queue.state == QueueState.DONE
    return queue


def _plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cur:
        cur.execute("EXPLAIN SELECT count(*) FROM (" + sql + ") AS missing", params)
        return "\n".join(row[0] for row in cur.fetchall())


@pytest.mark.django_db(transaction=True)
def test_the_missing_rows_of_a_second_full_scan_are_found_without_a_nested_loop(fake_conn, fake_kind, marks_missing):
    """Two full scans of 3,000 customers back to back, nothing analyzed in between (as the bench found it: the
    count took 0.55 s through 4.5 million line comparisons, against 1.3 ms hashed). Inside the block the
    planner has no nested loop to choose; outside it, whatever it chose before is left alone."""
    fake_kind.__init__(3000)
    _full_scan(fake_conn)
    second = _full_scan(fake_conn)
    assert Customer.objects.filter(connection=fake_conn, deleted_at__isnull=True).count() == 3000
    missing = sinks.missing_rows(Customer, second)
    with sinks.without_nested_loops():
        plan = _plan(missing)
        assert missing.count() == 0
    assert "Nested Loop" not in plan, plan
    assert "Anti Join" in plan, plan
    with connection.cursor() as cur:
        cur.execute("SHOW enable_nestloop")
        assert cur.fetchone()[0] == "on"  # the block's setting ended with it


@pytest.mark.django_db(transaction=True)
def test_both_deletion_paths_plan_their_anti_join_without_nested_loops(fake_conn, fake_kind, marks_missing, settings):
    """The engine's mark-missing step and an operator's "apply the held deletions": each statement that reads
    missing_rows runs with nested loops off, and the setting is back on after."""
    settings.SYNC_MASS_DELETE_MIN_ROWS = 1
    settings.SYNC_MASS_DELETE_FRACTION = 0.1
    fake_kind.__init__(40)
    _full_scan(fake_conn)
    fake_kind.records = fake_kind.records[:20]  # half of them gone upstream: the guard holds the deletions
    with CaptureQueriesContext(connection) as scan:
        held = _full_scan(fake_conn)
    assert held.pending_deletions == 20
    with CaptureQueriesContext(connection) as applied:
        services.queue_apply_deletions(queue=held)
    assert Customer.objects.filter(connection=fake_conn, deleted_at__isnull=False).count() == 20
    for captured in (scan, applied):
        sqls = [q["sql"] for q in captured.captured_queries]
        anti = [i for i, sql in enumerate(sqls) if "NOT (EXISTS(" in sql and "sync_syncqueueline" in sql]
        assert anti, sqls
        offs = [i for i, sql in enumerate(sqls) if "set_config('enable_nestloop', 'off', true)" in sql]
        restores = [i for i, sql in enumerate(sqls) if "set_config('enable_nestloop', 'on', true)" in sql]
        for i in anti:  # turned off before it, and not back on in between; back on after it
            last_off = max((j for j in offs if j < i), default=-1)
            assert last_off >= 0 and not any(last_off < j < i for j in restores), sqls
            assert any(j > i for j in restores), sqls


def _nestloop() -> str:
    with connection.cursor() as cur:
        cur.execute("SHOW enable_nestloop")
        return cur.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_the_setting_ends_with_the_block_inside_an_outer_transaction():
    """set_config(..., true) made in a savepoint would last until the outer transaction ends: the block puts
    the setting back when it ends, and a rollback of the block undoes it; a transaction that had it off
    already keeps it off."""
    from django.db import transaction

    with transaction.atomic():
        with sinks.without_nested_loops():
            assert _nestloop() == "off"
        assert _nestloop() == "on"
        with pytest.raises(ZeroDivisionError), sinks.without_nested_loops():
            assert _nestloop() == "off"
            1 / 0  # noqa: B018
        assert _nestloop() == "on"
        with connection.cursor() as cur:
            cur.execute("SET LOCAL enable_nestloop = off")
        with sinks.without_nested_loops():
            pass
        assert _nestloop() == "off"
    assert _nestloop() == "on"
