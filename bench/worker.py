"""One engine run in a fresh process, for B4 (peak RSS): ``python -m bench.worker <connection id> <expected>``.

Prints one JSON line: seconds, peak RSS (ru_maxrss, KiB on Linux) and the RSS right after start-up."""

from __future__ import annotations

import json
import resource
import sys


def main() -> None:
    from bench import scenario

    scenario.setup_django(migrate=False)
    from connectors.models import Connection

    conn = Connection.objects.get(pk=int(sys.argv[1]))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = scenario.engine_run(conn, expect=int(sys.argv[2]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_kib": peak, "startup_kib": baseline}), flush=True)


if __name__ == "__main__":
    main()
