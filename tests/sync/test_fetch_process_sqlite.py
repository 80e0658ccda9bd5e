"""The fetch-process tests (marked ``forks_db``) on SQLite: in a pytest of their own whose test database is a
file (SYNCHUB_SQLITE_TEST_FILE, tests/conftest.py), since a forked child must open the database itself and an
in-memory one it could only inherit (the engine then fetches in a thread: sync.engine._fetch_process). Runs in
both legs of .ci/run; on PostgreSQL those tests also run in the leg itself."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from customers.models import Customer
from sync import engine, fetchproc, services
from tests.fakes import UPSTREAM

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(660)
def test_the_fetch_process_tests_pass_on_a_sqlite_file(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SYNCHUB_REQUIRE_POSTGRES")}
    env["SYNCHUB_SQLITE_TEST_FILE"] = str(tmp_path / "test.sqlite3")
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'unused.sqlite3'}"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "forks_db", "-p", "no:cacheprovider", "-o", "addopts="],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = done.stdout[-3000:] + done.stderr[-2000:]
    assert done.returncode == 0, tail
    summary = re.search(r"(\d+) passed", done.stdout)
    assert summary and int(summary.group(1)) >= 9, tail  # every forks_db test ran: none skipped, none failed
    assert " skipped" not in done.stdout.splitlines()[-1], tail
    # (On an in-memory database they would fail, not pass: the engine would fetch in a thread, and the tests
    # assert that a process was started.)


@pytest.mark.django_db(transaction=True)
def test_no_fetch_process_beside_an_in_memory_sqlite_database(
    org, make_connection, fake_kind, settings, monkeypatch, caplog, fork_beside_test_threads
):
    """Django never closes an in-memory SQLite database (it would be lost), so a child would inherit its
    connection, and what it wrote there would stay in its own copy: the engine fetches in a thread instead (and
    prepares the rows ahead there, as any first sync does: sync.engine's _released)."""
    from django.db import connection

    if connection.vendor != "sqlite" or not connection.is_in_memory_db():
        pytest.skip("the SQLite leg's in-memory test database")
    settings.SYNC_FETCH_PROCESS = True
    monkeypatch.setattr(fetchproc.ForkedProducer, "__init__", lambda *a, **k: pytest.fail("forked"))
    encoders = []
    real_encoder = engine.TableSink.row_encoder
    monkeypatch.setattr(
        engine.TableSink, "row_encoder", lambda self, run: encoders.append(run) or real_encoder(self, run)
    )
    UPSTREAM.__init__(30)
    conn = make_connection(org, kind="fake", name="memory")
    q = services.sync_start(connection=conn, resource="customers", enqueue=False).queue
    with caplog.at_level(logging.INFO, logger="sync.engine"):
        assert engine.run_queue(q.pk) == "done"
    assert "fetching in a thread, not a process: an in-memory SQLite database" in caplog.text
    assert len(encoders) == 1, "one encoder, for the fetch thread"
    assert Customer.objects.filter(connection=conn).count() == 30
