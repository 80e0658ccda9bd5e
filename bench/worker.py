"""One engine run in a fresh process, for B4 (peak RSS): ``python -m bench.worker <connection id> <expected>``.

Prints one JSON line: seconds, peak RSS (ru_maxrss, KiB on Linux, includes start-up), and the resident
set sampled every 20 ms during the run (psutil) with its value when the run started, so growth during
the run shows even when start-up was the peak."""

from __future__ import annotations

import json
import resource
import sys
import threading

import psutil


def main() -> None:
    from bench import scenario

    scenario.setup_django(migrate=False)
    from connectors.models import Connection

    conn = Connection.objects.get(pk=int(sys.argv[1]))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    proc = psutil.Process()
    rss_start = proc.memory_info().rss // 1024
    sampled = {"max": rss_start}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            sampled["max"] = max(sampled["max"], proc.memory_info().rss // 1024)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    seconds = scenario.engine_run(conn, expect=int(sys.argv[2]))
    stop.set()
    sampler.join()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_kib": peak,
                "startup_kib": baseline,
                "rss_start_kib": rss_start,
                "rss_sampled_max_kib": sampled["max"],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
