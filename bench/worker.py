"""One engine run in a fresh process, for B4 (peak RSS): ``python -m bench.worker <connection id> <expected>``.

Prints one JSON line: seconds; the peak resident set of this process (``VmHWM`` in /proc/self/status, KiB:
the high-water mark of the memory map exec() gave it, start-up included); ``ru_maxrss``, kept for
comparison only: Linux carries the forking process's high-water mark across exec() into it, so here it read
the bench's own ~190 MiB whatever the run did (2026-12-05: 193,316 KiB at start-up and after runs of 100,000
and 300,000 alike); and the resident set sampled every 20 ms during the run (psutil) with its value when the
run started, so growth during the run shows even when start-up was the peak."""

from __future__ import annotations

import json
import resource
import sys
import threading

import psutil


def vm_hwm_kib() -> int | None:
    """This process's peak resident set (Linux), or None where /proc does not say."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


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
    hwm = vm_hwm_kib()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_kib": hwm or peak,
                "peak_source": "VmHWM" if hwm else "ru_maxrss",
                "ru_maxrss_kib": peak,
                "ru_maxrss_at_start_kib": baseline,
                "rss_start_kib": rss_start,
                "rss_sampled_max_kib": sampled["max"],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
