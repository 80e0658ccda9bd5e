"""B7 triggers: p95 latency of POST /api/connections/{id}/resources/{resource}/sync under 20 concurrent
clients against a live `manage.py runserver --noreload` (staff token, THROTTLE_SYNC_TRIGGER raised), while
a `manage.py qcluster` works the runs; then the median time from one trigger to the first line processed
by that running qcluster (SyncQueue.done_count > 0), with the cluster otherwise idle.

Every trigger hits a distinct connection, so each one really creates a run (created=true is checked)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import requests

from .common import BASE_DIR, median, percentile

CUSTOMERS = 30  # per sandbox store (one page): the runs stay short so the cluster keeps up


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError(f"live server did not answer at {url}")


def _connections(org, base_url: str, sandbox, n: int, tag: str) -> list[int]:
    from connectors.models import Connection

    ids = []
    for i in range(n):
        conn = Connection(organization=org, kind="woocommerce", name=f"bench7 {tag} {i}", base_url=base_url)
        conn.credentials = {"consumer_key": sandbox.consumer_key, "consumer_secret": sandbox.consumer_secret}
        conn.save()
        ids.append(conn.pk)
    return ids


def _trigger(session: requests.Session, server: str, conn_id: int) -> tuple[float, int, dict]:
    t0 = time.perf_counter()
    r = session.post(f"{server}/api/connections/{conn_id}/resources/customers/sync", json={}, timeout=60)
    ms = (time.perf_counter() - t0) * 1000
    return ms, r.status_code, (r.json() if r.headers.get("content-type", "").startswith("application/json") else {})


def run(*, clients: int, rounds: int, repeat: int, org, token: str) -> dict:
    from django_q.models import OrmQ

    from connectors.sandbox.server import serve
    from connectors.woocommerce.sandbox import WooSandbox
    from sync.models import SyncQueue

    OrmQ.objects.all().delete()  # leftovers of other benchmarks must not occupy the cluster
    sandbox = WooSandbox(seed=7, size=CUSTOMERS, orders=0, products=0)
    port = _free_port()
    server = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Token {token}"}
    latencies: list[float] = []
    bad: list[str] = []
    first_line: list[float] = []
    with serve(sandbox.app) as base:
        web = _start(["runserver", "--noreload", f"127.0.0.1:{port}"])
        cluster = _start(["qcluster"])
        try:
            _wait_http(server + "/api/")
            time.sleep(3)  # let the cluster's workers come up
            # --- p95 under concurrent clients --------------------------------------------------------------
            conn_ids = _connections(org, base, sandbox, clients * rounds, "load")
            barrier = threading.Barrier(clients)
            lock = threading.Lock()

            def client(k: int) -> None:
                with requests.Session() as s:
                    s.headers.update(headers)
                    _trigger(s, server, conn_ids[k])  # connection warm-up is not measured... but it is a real
                    for rnd in range(1, rounds):  # trigger too, so use the other ids for the measured rounds
                        barrier.wait()
                        ms, status, body = _trigger(s, server, conn_ids[rnd * clients + k])
                        with lock:
                            latencies.append(ms)
                            if status != 202 or not body.get("created"):
                                bad.append(f"{status} {body.get('result', body)}"[:80])

            threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            # --- trigger -> first line processed, the cluster otherwise idle --------------------------------
            deadline = time.monotonic() + 120
            while SyncQueue.objects.filter(is_active=True).exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            single_ids = _connections(org, base, sandbox, max(3, repeat), "single")
            with requests.Session() as s:
                s.headers.update(headers)
                for conn_id in single_ids:
                    time.sleep(1.0)  # an idle cluster, not one mid-poll right after the previous run
                    t0 = time.perf_counter()
                    _ms, status, body = _trigger(s, server, conn_id)
                    if status != 202:
                        bad.append(f"single {status} {body}"[:80])
                        continue
                    queue_id = body["queue_id"]
                    while time.perf_counter() - t0 < 60:
                        if SyncQueue.objects.filter(pk=queue_id, done_count__gt=0).exists():
                            first_line.append((time.perf_counter() - t0) * 1000)
                            break
                        time.sleep(0.01)
        finally:
            _stop(cluster)
            _stop(web)
    if not latencies:
        raise RuntimeError("not available: no trigger answered")
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    fl = median(first_line) if first_line else float("nan")
    notes = [
        f"{len(latencies)} measured triggers ({clients} clients x {rounds - 1} rounds after a warm-up round): "
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(latencies):.1f} ms; non-202/not-created: {len(bad)} {bad[:3]}",
        f"trigger -> first line done (qcluster, Q_POLL={os.environ.get('Q_POLL', '0.5 default')}): "
        + ", ".join(f"{v:.0f}" for v in first_line)
        + " ms",
    ]
    return {
        "id": "B7",
        "name": f"trigger endpoint, {clients} concurrent clients (runserver + qcluster subprocesses)",
        "measured": f"trigger p95 {p95:.1f} ms (p50 {p50:.1f}); trigger->first line median {fl:.0f} ms",
        "target": "none set in issue 10 (reported)",
        "ratio": "-",
        "met": None if not bad and first_line else False,
        "notes": notes,
    }
