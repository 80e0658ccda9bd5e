"""The CLI contract (README "manage.py"): exit codes, --json, help for every argument, progress once per
change on stdout and logs on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command, load_command_class

from sync import services
from sync.models import SyncQueue

COMMANDS = ("sync_run", "sync_status", "sync_retry", "sync_force_done", "sync_cancel", "sync_reap", "sync_schedules")


def call(*args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one command run in-process."""
    out, err = StringIO(), StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), err.getvalue() + str(exc)
    return 0, out.getvalue(), err.getvalue()


# --- exit codes ----------------------------------------------------------------------------------------
def test_sync_run_exit_codes(fake_conn, fake_kind):
    fake_kind.__init__(3)
    assert call("sync_run", str(fake_conn.pk), "customers")[0] == 0
    fake_kind.records[0]["email"] = ""
    assert call("sync_run", str(fake_conn.pk), "customers", "--full-scan")[0] == 1  # partial
    assert call("sync_run", "999999", "customers")[0] == 2  # no such connection
    assert call("sync_run", str(fake_conn.pk), "nope")[0] == 2  # no such resource
    fake_conn.needs_reauth = True
    fake_conn.save(update_fields=["needs_reauth"])
    assert call("sync_run", str(fake_conn.pk), "customers")[0] == 1  # cannot run


def test_queue_command_exit_codes(fake_conn, fake_kind):
    fake_kind.__init__(3)
    fake_kind.flaky["2"] = 3  # fails its 3 attempts, then works
    assert call("sync_run", str(fake_conn.pk), "customers")[0] == 1
    queue = SyncQueue.objects.get()
    assert call("sync_retry", str(queue.pk))[0] == 0
    assert call("sync_retry", str(queue.pk))[0] == 3  # no failed lines left
    assert call("sync_force_done", str(queue.pk))[0] == 3  # already done
    assert call("sync_cancel", str(queue.pk))[0] == 3  # already finished
    for name in ("sync_retry", "sync_force_done", "sync_cancel"):
        assert call(name, "999999")[0] == 2
    active = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    assert call("sync_cancel", str(active.pk))[0] == 0


def test_status_reap_schedules_exit_codes(fake_conn, fake_kind):
    assert call("sync_status")[0] == 0
    assert call("sync_status", "--connection", "999999")[0] == 2
    assert call("sync_reap")[0] == 3
    assert call("sync_schedules")[0] == 0


# --- --json ----------------------------------------------------------------------------------------------
def test_sync_status_json(fake_conn, fake_kind):
    assert json.loads(call("sync_status", "--json")[1]) == {"statuses": [], "active_queues": []}
    fake_kind.__init__(4)
    call("sync_run", str(fake_conn.pk), "customers")
    active = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    code, out, _ = call("sync_status", "--json", "--connection", str(fake_conn.pk))
    data = json.loads(out)
    assert code == 0
    [status] = data["statuses"]
    assert status["connection_id"] == fake_conn.pk and status["connection_name"] == fake_conn.name
    assert status["resource"] == "customers" and status["state"] == "success"
    assert status["records_synced"] == "4" and status["cursor"] == "4"
    [queue] = data["active_queues"]
    assert queue["id"] == active.pk and queue["state"] == "draft" and queue["is_active"] is True
    assert "credentials" not in out and "s3cr3t-token-value" not in out


def test_sync_run_json_final_report(fake_conn, fake_kind):
    fake_kind.__init__(3)
    code, out, err = call("sync_run", str(fake_conn.pk), "customers", "--json")
    report = json.loads(out)  # stdout is the report alone: progress went to stderr
    assert code == 0 and report["exit_code"] == 0
    assert report["result"] == "created" and report["outcome"] == "done"
    assert report["queue"]["done_count"] == 3 and report["queue"]["state"] == "done"
    assert report["queue"]["progress"]["percent"] == 100
    assert "[done] 3/3 done" in err
    fake_kind.records[0]["email"] = ""
    code, out, _ = call("sync_run", str(fake_conn.pk), "customers", "--json", "--full-scan")
    report = json.loads(out)
    assert code == 1 and report["exit_code"] == 1 and report["outcome"] == "partial"
    assert report["queue"]["failed_count"] == 1


# --- progress once per change -------------------------------------------------------------------------
def test_progress_lines_are_printed_once_per_change(fake_conn, fake_kind):
    fake_kind.__init__(25)
    fake_conn.config = {"fetch_group_records": 1}
    fake_conn.save(update_fields=["config"])
    code, out, _ = call("sync_run", str(fake_conn.pk), "customers", "--batch-size", "10")
    lines = out.splitlines()
    assert code == 0
    assert len(lines) == len(set(lines)), lines  # the final line used to come twice
    assert sum("[done] 25/25 done" in ln for ln in lines) == 1


# --- help ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", (*COMMANDS, "sandbox"))
def test_every_argument_has_help_and_exit_codes_are_documented(name):
    command = load_command_class("sync" if name != "sandbox" else "connectors", name)
    parser = command.create_parser("manage.py", name)
    for action in parser._actions:
        assert action.help, f"{name}: {action.dest} has no help"
    text = parser.format_help()
    assert "exit codes: 0 done" in text and "2 usage error or not found" in text and "3 nothing to do" in text


# --- a real process: exit codes reach the shell, stdout and stderr stay apart -------------------------------
@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    db = tmp_path_factory.mktemp("cli") / "cli.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db}",
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
    }
    env.pop("SYNCHUB_REQUIRE_POSTGRES", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=settings.BASE_DIR, env=env, check=True)
    return env


def manage(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=Path(settings.BASE_DIR),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_exit_codes_in_a_real_process(cli_env):
    usage = manage(cli_env, "sync_run", "not-a-number", "customers")
    assert usage.returncode == 2 and "invalid int value" in usage.stderr and usage.stdout == ""
    missing = manage(cli_env, "sync_retry", "424242")
    assert missing.returncode == 2 and "queue #424242 does not exist" in missing.stderr and missing.stdout == ""
    assert manage(cli_env, "sync_run", "424242", "customers").returncode == 2
    nothing = manage(cli_env, "sync_reap")
    assert nothing.returncode == 3 and nothing.stdout.startswith("reaped: 0 line(s)")
    status = manage(cli_env, "sync_status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout) == {"statuses": [], "active_queues": []}
