"""Crash recovery: a real worker process is SIGKILLed in the middle of a batch. After the reaper and a
resume, the domain table equals the upstream exactly and the crash counted as an attempt."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from customers.models import Customer
from sync import services
from sync.models import LineState, QueueState, SyncActivity, SyncQueue, SyncQueueLine, SyncStatus
from tests.sync.conftest import assert_counters_match

# The worker process must reach the test database: a file or a server, not SQLite's in-memory test DB.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def test_sigkill_mid_batch_then_reap_and_resume(claimed_conn, fake_kind, fake_clock, tmp_path):
    fake_kind.__init__(60)  # six pages of ten
    upstream = {str(r["id"]): r for r in fake_kind.records}
    records_file = tmp_path / "upstream.json"
    records_file.write_text(json.dumps(fake_kind.records))
    marker = tmp_path / "in-batch"
    queue = services.sync_start(connection=claimed_conn, resource="customers", enqueue=False).queue

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", "DATABASE_URL": _database_url()}
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.sync.crash_worker", str(queue.pk), str(records_file), str(marker), "37", "10"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():  # waiting for another process, not for time to pass
            assert worker.poll() is None, worker.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the worker never reached the poisoned record"
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.stdout.close()

    # What the dead worker left: committed batches are in, the batch holding record 37 is leased.
    held = set(
        SyncQueueLine.objects.filter(queue=queue, state=LineState.PROCESSING).values_list("external_id", flat=True)
    )
    assert "37" in held and len(held) == 10
    assert not Customer.objects.filter(connection=claimed_conn, external_id__in=held).exists()
    assert Customer.objects.filter(connection=claimed_conn).count() == 30
    queue.refresh_from_db()
    assert queue.is_active and not queue.fetch_done and queue.state == QueueState.PROCESSING
    assert_counters_match(queue)

    # Minutes later (leases written on the real clock have expired), the reaper runs: it returns the
    # held lines to draft and resumes the queue (django-q2 runs the resumed task inline in tests).
    lease = dt.timedelta(seconds=django_settings.SYNC_LEASE_SECONDS)
    fake_clock.set(dt.datetime.now(dt.UTC) + lease + dt.timedelta(seconds=5))
    result = services.lines_reap()
    assert result["returned"] == 10 and result["failed"] == 0 and result["resumed"] == 1

    queue.refresh_from_db()
    assert queue.state == QueueState.DONE, (queue.state, queue.last_error)
    local = {c.external_id: c for c in Customer.objects.filter(connection=claimed_conn)}
    assert set(local) == set(upstream)  # nothing missing
    assert Customer.objects.filter(connection=claimed_conn).count() == len(upstream)  # nothing duplicated
    for ext, record in upstream.items():
        assert (local[ext].email, local[ext].first_name, local[ext].last_name) == (
            record["email"],
            record["first_name"],
            record["last_name"],
        )
    attempts = dict(SyncQueueLine.objects.filter(queue=queue).values_list("external_id", "attempts"))
    assert {ext for ext, n in attempts.items() if n == 2} == held  # the crash counted on the lines it held
    assert {ext for ext, n in attempts.items() if n == 1} == set(upstream) - held
    assert SyncActivity.objects.filter(queue=queue, event="lines.reaped").exists()
    assert SyncStatus.objects.get(connection=claimed_conn, resource="customers").cursor == "60"
    assert SyncQueue.objects.filter(connection=claimed_conn).count() == 1
    assert_counters_match(queue)
