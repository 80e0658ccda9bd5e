"""A Django app only the chaos suite's qcluster processes install (tests/chaos/qcluster_settings.py): it
registers the chaos connector kind and, with ``CHAOS_RECORD_DIR``, records what each process does
(``CHAOS_BATCH_PAUSE``: seconds of pause after each batch).

Installed in ``ready()``, i.e. in the qcluster parent before it forks its workers, so every worker (and
every recycled one) inherits the hooks. Files are per process (``<cluster>-<pid>.upserts`` / ``.runs``),
so nothing depends on appends from several processes interleaving cleanly; ``.up`` marks a worker ready."""

from __future__ import annotations

import functools
import os
import time

from django.apps import AppConfig


def _append(folder: str, suffix: str, lines: list[str]) -> None:
    name = f"{os.environ.get('CHAOS_CLUSTER', 'cluster')}-{os.getpid()}.{suffix}"
    with open(os.path.join(folder, name), "a") as fh:
        fh.writelines(f"{line}\n" for line in lines)


def install_recorders(folder: str, pause: float = 0.0) -> None:
    from sync import engine, tasks

    write = engine.QueueRunner._write

    @functools.wraps(write)
    def _write(self, upserts, deletes, now):
        write(self, upserts, deletes, now)
        _append(folder, "upserts", [f"{self.queue.pk} {line.external_id}" for line, _ in upserts])
        if pause:
            time.sleep(pause)  # slower batches: a duplicate task gets to work the queue alongside

    engine.QueueRunner._write = _write

    run_queue = tasks.run_queue

    @functools.wraps(run_queue)
    def run_queue_recorded(queue_id: int):
        _append(folder, "runs", [str(queue_id)])  # every task django-q2 hands to this process
        return run_queue(queue_id)

    tasks.run_queue = run_queue_recorded

    from django_q.signals import post_spawn

    def spawned(sender, proc_name, **kwargs):
        _append(folder, "up", [proc_name])  # a worker of this cluster is ready for work

    post_spawn.connect(spawned, weak=False)


def watch_parent(parent_pid: int, max_seconds: float) -> None:
    """Kill our whole process group when the test process is gone or the time is up: a cluster must not
    outlive an interrupted test run (it would keep polling, and block dropping the test database)."""
    import signal
    import threading

    def watch() -> None:
        deadline = time.monotonic() + max_seconds
        while time.monotonic() < deadline:
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, name="chaos-watchdog", daemon=True).start()


class ChaosClusterConfig(AppConfig):
    name = "tests.chaos"
    label = "chaos_cluster"
    verbose_name = "chaos suite hooks (qcluster processes only)"

    def ready(self) -> None:
        from tests.chaos.connector import register

        register()
        if os.environ.get("CHAOS_PARENT_PID"):
            watch_parent(int(os.environ["CHAOS_PARENT_PID"]), float(os.environ.get("CHAOS_MAX_SECONDS") or 300))
        if os.environ.get("CHAOS_RECORD_DIR"):
            install_recorders(os.environ["CHAOS_RECORD_DIR"], float(os.environ.get("CHAOS_BATCH_PAUSE") or 0))
