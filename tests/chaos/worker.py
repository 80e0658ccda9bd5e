"""A real worker process for the chaos suite: ``python -m tests.chaos.worker <queue id>``.

It runs ``sync.engine.run_queue`` on a queue of the pytest database (DATABASE_URL points at it), with
hooks chosen by environment variables, installed by wrapping engine methods in this process only:

- ``CHAOS_KILL_AT=<point>:<n>``: SIGKILL ourselves the n-th time the point is reached. Points:
  ``fetch`` (a page request is about to return: mid-fetch), ``stored`` (a page's lines committed),
  ``claimed`` (a batch claimed: lines leased), ``write`` (rows upserted, transaction not committed:
  mid-batch), ``committed`` (a batch committed), ``finalize`` (every line done, before the queue and
  status are settled), ``status`` (inside the settling transaction, writing SyncStatus). Lightspeed
  OAuth refresh points: ``refresh-send`` (the token POST is about to be sent), ``refresh-answered``
  (the token endpoint answered, so it has rotated the refresh token, but we have not stored the new
  pair), ``refresh-stored`` (the new pair is committed, not yet used).
- ``CHAOS_SIGNAL=SIGSTOP``: freeze at the point instead of dying (the test kills it later).
- ``CHAOS_RECORD=<path>``: append the external ids of every upsert this process writes (one per line).
- ``CHAOS_BATCH_PAUSE``: seconds of pause after each batch (so two workers overlap).
- ``CHAOS_UNTIL_SETTLED=1``: run the queue again until it is settled (as re-delivered tasks would).
- ``CHAOS_REFRESH_BARRIER=<dir>:<n>``: before a Lightspeed token refresh, wait until n processes have
  reached theirs (a file per process in <dir>), so several workers refresh the same token at once;
  ``CHAOS_REFRESH_AFTER=<file>`` then holds this one back until <file> exists (the test's token endpoint
  creates it when another worker's refresh reaches it: this one enters second, onto the held lock).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import time


def _die() -> None:
    sys.stdout.flush()
    # CHAOS_SIGNAL=SIGSTOP freezes the process instead (a hung worker, or a host gone silent).
    sig = getattr(signal, os.environ.get("CHAOS_SIGNAL") or "SIGKILL")
    # Signal this thread, not the process: the hook often fires in a thread other than the main one (the
    # engine's page prefetcher does the token refresh). The kernel hands a process-directed SIGSTOP
    # (os.kill(os.getpid(), ...)) to the main thread, and this thread kept running until the group stop
    # caught up with it: under CPU load, long enough to send the very token request the freeze is meant to
    # precede (the flaky SIGSTOP tests in test_token_refresh_killed.py). A thread-directed SIGSTOP stops
    # this thread before the call returns, then the rest of the process; SIGKILL kills the whole process
    # either way.
    signal.pthread_kill(threading.get_ident(), sig)


def install_kill(point: str, nth: int) -> None:
    from sync import engine
    from sync.services import settle
    from tests.chaos.connector import ChaosCustomers

    seen = {"n": 0}

    def reached() -> bool:
        seen["n"] += 1
        return seen["n"] == nth

    def after(owner, name: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            result = original(*args, **kwargs)
            if point != "claimed" or result:
                if reached():
                    _die()
            return result

        setattr(owner, name, wrapper)

    def before(owner, name: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            if reached():
                _die()
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)

    from connectors.lightspeed import auth as ls_auth
    from connectors.lightspeed import services as ls_services

    targets = {
        "refresh-send": lambda: before(ls_auth, "refresh"),
        "refresh-answered": lambda: after(ls_auth, "refresh"),
        "refresh-stored": lambda: after(ls_services, "token_refresh"),
        "fetch": lambda: before(ChaosCustomers, "get_page"),
        "stored": lambda: after(engine.QueueRunner, "_store_pages"),
        "claimed": lambda: after(engine.QueueRunner, "claim"),
        "write": lambda: after(engine.QueueRunner, "_write"),
        "committed": lambda: after(engine.QueueRunner, "process_batch"),
        "finalize": lambda: before(engine, "queue_finalize"),
        "status": lambda: before(settle, "status_upsert"),  # the settle's status write
    }
    targets[point]()


def install_recorder(path: str, pause: float) -> None:
    from sync import engine

    original = engine.QueueRunner._write

    def _write(self, upserts, deletes, now):
        original(self, upserts, deletes, now)
        with open(path, "a") as fh:
            fh.writelines(f"{line.external_id}\n" for line, _ in upserts)
        if pause:
            time.sleep(pause)

    engine.QueueRunner._write = _write


def install_refresh_barrier(spec: str, after: str) -> None:
    from connectors.lightspeed import services as ls_services

    folder, _, count = spec.rpartition(":")
    original = ls_services.token_refresh

    @functools.wraps(original)
    def token_refresh(*args, **kwargs):
        with open(os.path.join(folder, str(os.getpid())), "w"):
            pass
        deadline = time.monotonic() + 30
        while len(os.listdir(folder)) < int(count) and time.monotonic() < deadline:
            time.sleep(0.01)
        while after and not os.path.exists(after) and time.monotonic() < deadline:
            time.sleep(0.01)
        return original(*args, **kwargs)

    ls_services.token_refresh = token_refresh


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    import django

    django.setup()
    from sync.engine import run_queue
    from tests.chaos.connector import register

    register()
    if os.environ.get("CHAOS_KILL_AT"):
        point, _, nth = os.environ["CHAOS_KILL_AT"].partition(":")
        install_kill(point, int(nth or 1))
    if os.environ.get("CHAOS_RECORD"):
        install_recorder(os.environ["CHAOS_RECORD"], float(os.environ.get("CHAOS_BATCH_PAUSE") or 0))
    if os.environ.get("CHAOS_REFRESH_BARRIER"):
        install_refresh_barrier(os.environ["CHAOS_REFRESH_BARRIER"], os.environ.get("CHAOS_REFRESH_AFTER", ""))
    queue_id = int(sys.argv[1])
    state = run_queue(queue_id)
    if os.environ.get("CHAOS_UNTIL_SETTLED"):
        from sync.models import SyncQueue

        deadline = time.monotonic() + 60
        while SyncQueue.objects.filter(pk=queue_id, is_active=True).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
            state = run_queue(queue_id)
    print(f"state={state}", flush=True)


if __name__ == "__main__":
    main()
