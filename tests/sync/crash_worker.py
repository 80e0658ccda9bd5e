"""A worker process for the crash test (tests/sync/test_crash.py), run as ``python -m tests.sync.crash_worker``.

It registers the fake connector kind, loads the upstream's records from a JSON file, and works one queue
with engine.run_queue. When it maps record ``kill_at`` it writes ``marker`` and blocks, so the test can
SIGKILL it in the middle of a batch, with that batch's lines claimed and leased.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(queue_id: int, records_path: str, marker: str, kill_at: str, batch_size: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    import django

    django.setup()
    from sync import engine, registry
    from tests import fakes

    registry.KINDS["fake"] = "tests.fakes.connector"
    registry.get_connector.cache_clear()
    with open(records_path) as fh:
        fakes.UPSTREAM.records = json.load(fh)
    resource = fakes.connector.resources["customers"]
    original_map = resource.map

    def map_or_hang(record: dict) -> dict:
        if str(record["id"]) == kill_at:
            with open(marker, "w") as fh:
                fh.write(str(os.getpid()))
            while True:  # the parent kills us here, mid-batch
                time.sleep(1)
        return original_map(record)

    resource.map = map_or_hang
    engine.run_queue(queue_id, batch_size=batch_size)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
