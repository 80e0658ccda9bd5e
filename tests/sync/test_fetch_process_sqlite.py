"""The fetch-process tests (marked ``forks_db``) on SQLite: in a pytest of their own whose test database is a
file (SYNCHUB_SQLITE_TEST_FILE, tests/conftest.py), since a forked child must open the database itself and an
in-memory one it could only inherit (the engine then fetches in a thread: sync.engine._fetch_process). Runs in
both legs of .ci/run; on PostgreSQL those tests also run in the leg itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
