"""A fake WooCommerce customers upstream serving PRE-RENDERED page bodies, so the upstream is never what a
benchmark measures.

``GET /n<customers>/d<delay ms>/wp-json/wc/v3/customers`` answers the two query forms the benchmarks send:

- the WooCommerce connector's (connectors/woocommerce/resources.py): ``offset`` paging with ``per_page=100``
  and an overlap (offsets 0, 95, 190, ...), ``role=all&orderby=id&order=asc``, the keys as
  ``consumer_key``/``consumer_secret`` query parameters (plain HTTP to loopback, client.py), speculative
  reads past the end (answered ``[]``);
- the plain loop's (bench/plain_loop.py): ``page=1..N`` with ``per_page=100``, same keys and order.

Dialect (upstream-apis.md §1, as connectors/woocommerce/sandbox.py answers): 401
``woocommerce_rest_cannot_view`` for an unknown key, 401 ``woocommerce_rest_authentication_error`` for a
wrong secret (query keys or Basic auth), 400 ``rest_invalid_param`` for ``per_page`` outside 1..100 or a
``page`` below 1, ``offset`` wins over ``page``, ``X-WP-Total``/``X-WP-TotalPages``/``Date`` on every page and
``Link`` (rel prev/next only) in the page form, unknown parameters ignored. Only ``orderby=id|include``
(either ``order``) and ``role=all|customer`` are served (every generated customer has role ``customer``);
anything else, and any ``email``/``search``/``include``/``exclude`` filter, is answered 400
``bench_unsupported`` rather than served wrong.

``GET /n<orders>/d<delay ms>/wp-json/wc/v3/orders`` serves a store of orders the same way (bench/orders.py:
the connector's orders query, ``orderby=id&order=asc&dates_are_gmt=true``, no ``modified_after`` on a first
sync; ``bench.upstream.order``, shaped as the REST docs' example order). A ``modified_after``,
``modified_before`` or ``status`` filter is answered 400 ``bench_unsupported`` too, on either route.

Records are the generated Woo v3 customers of ``bench.upstream.customer`` (about 1.3 kB of JSON each),
rendered once with ``json.dumps`` (the same bytes the Woo sandbox would send). Every page a scenario asks
for is built as bytes when its store is first needed (``--store N:DELAY`` builds it at start, before the
server says where it listens); a request only looks its body up and writes it. A page form nobody
prepared (another ``per_page``, an odd offset) is built on first request and cached.

HTTP/1.1 with keep-alive (a ``requests.Session`` keeps its connection) on ``ThreadingHTTPServer``: one thread
per client connection, so a 50 ms ``delay`` (sleep before answering) does not serialise concurrent
fetchers. ``python -m bench.prerendered --selftest`` measures its own throughput.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import re
import socket
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode

from bench.upstream import customer, order, visited
from connectors.woocommerce.sandbox import SANDBOX_KEY, SANDBOX_SECRET

KEY, SECRET = SANDBOX_KEY, SANDBOX_SECRET
PATH = re.compile(r"^/n(?P<n>\d+)/d(?P<delay>\d+)/wp-json/wc/v3/(?P<kind>customers|orders)$")
LIVE = re.compile(r"^/n(?P<n>\d+)/d(?P<delay>\d+)/bench/live$")
PER_PAGE = 100
OVERLAP = 5  # the connector's default WOOCOMMERCE_PAGE_OVERLAP; other offsets are built on first request
UNSUPPORTED_FILTERS = ("email", "search", "include", "exclude", "modified_after", "modified_before", "status")
JSON_TYPE = b"Content-Type: application/json; charset=UTF-8\r\n"


def _error(status: int, code: str, message: str, **data) -> tuple[int, bytes]:
    return status, json.dumps({"code": code, "message": message, "data": {"status": status, **data}}).encode()


DENIED_KEY = _error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
DENIED_SECRET = _error(401, "woocommerce_rest_authentication_error", "Consumer secret is invalid.")
BAD_PER_PAGE = _error(
    400,
    "rest_invalid_param",
    "Invalid parameter(s): per_page",
    params={"per_page": "per_page must be between 1 (inclusive) and 100 (inclusive)"},
)
BAD_PAGE = _error(
    400, "rest_invalid_param", "Invalid parameter(s): page", params={"page": "page must be greater than or equal to 1"}
)
NOT_INT = _error(400, "rest_invalid_param", "Invalid parameter(s): per_page", params={"per_page": "not an integer"})
NO_ROUTE = _error(404, "rest_no_route", "No route was found matching the URL and request method.")


class Store:
    """One store of ``n`` generated customers (or orders: ``kind``): pre-rendered page bodies keyed by (start,
    per_page, desc)."""

    def __init__(self, n: int, delay_ms: int, path: str, kind: str = "customers") -> None:
        self.n, self.delay, self.path, self.kind = n, delay_ms / 1000, path, kind
        self.lock = threading.Lock()
        self.pages: dict[tuple[int, int, bool], bytes] = {}
        self.day, self.active = 0, 0
        self.render()

    def render(self) -> None:
        t0 = time.perf_counter()
        day, active = self.day, self.active
        records = [json.dumps(self.record(i, day, active)).encode() for i in range(1, self.n + 1)]
        starts = set(range(0, self.n, PER_PAGE - OVERLAP)) | set(range(0, self.n, PER_PAGE))  # connector's + page
        self.pages = {
            (start, PER_PAGE, False): b"[" + b", ".join(records[start : start + PER_PAGE]) + b"]" for start in starts
        }
        self.build_seconds = time.perf_counter() - t0
        self.bytes = sum(len(b) for b in self.pages.values())

    def record(self, i: int, day: int, active: int) -> dict:
        if self.kind == "orders":
            return order(i)  # an order's day does not move (live() is the customers' visits)
        return customer(i, day=day, active_per_mille=active)

    def live(self, day: int, per_mille: int) -> int:
        """Serve the store ``day`` days on, ``per_mille`` of its customers having logged in that day (their
        ``wc_last_active`` moved: bench.upstream.customer); day 0 is the store as it started. Renders every page
        again (a few seconds at 300,000; not a timed part of any run). Returns how many customers visited."""
        with self.lock:
            self.day, self.active = day, per_mille
            self.render()
        return sum(visited(i, day, per_mille) for i in range(1, self.n + 1))

    def body(self, start: int, per_page: int, desc: bool) -> bytes:
        if start >= self.n:
            return b"[]"
        key = (start, per_page, desc)
        body = self.pages.get(key)
        if body is None:  # a page form no scenario prepared: render it once, keep it
            with self.lock:  # the day it is rendered for, and the pages it belongs to (live() may swap both)
                pages, day, active = self.pages, self.day, self.active
            ids = range(start + 1, min(start + per_page, self.n) + 1)
            if desc:
                ids = range(self.n - start, max(self.n - start - per_page, 0), -1)
            body = json.dumps([self.record(i, day, active) for i in ids]).encode()
            with self.lock:
                if self.pages is pages:  # else a live() came in between: its pages hold this one's day
                    pages[key] = body
        return body


class Stores:
    def __init__(self) -> None:
        self.stores: dict[tuple[int, int, str], Store] = {}
        self.lock = threading.Lock()

    def get(self, n: int, delay_ms: int, kind: str = "customers") -> Store:
        store = self.stores.get((n, delay_ms, kind))
        if store is None:
            with self.lock:
                store = self.stores.get((n, delay_ms, kind))
                if store is None:
                    # Same records, another delay: share the bodies instead of rendering them again.
                    twin = next((s for (m, _, k), s in self.stores.items() if m == n and k == kind), None)
                    if twin is not None:
                        store = Store.__new__(Store)
                        store.__dict__.update(twin.__dict__)
                        store.delay = delay_ms / 1000
                    else:
                        store = Store(n, delay_ms, f"/n{n}/d{delay_ms}", kind)
                    self.stores[(n, delay_ms, kind)] = store
        return store


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one TCP connection per client session
    server_version = "prerendered-woo"
    stores: Stores  # set on the class by make_server

    def setup(self) -> None:
        super().setup()
        # No Nagle: a body's last partial segment must not wait for the client's delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args) -> None:
        pass

    def do_POST(self) -> None:
        """``POST /n<customers>/d<delay>/bench/live?day=D&active=PER_MILLE``: the benchmark's own control (no
        WooCommerce route): serve that store as it is ``day`` days on (Store.live); 200 with how many visited."""
        path, _, query = self.path.partition("?")
        match = LIVE.match(path)
        store = self.stores.stores.get((int(match["n"]), int(match["delay"]), "customers")) if match else None
        if store is None:  # no such route, or a store nobody asked for yet: not built for a control call
            return self._send(*NO_ROUTE)
        args = dict(parse_qsl(query))
        try:
            day, active = int(args.get("day", 0)), int(args.get("active", 0))
        except ValueError:
            return self._send(*_error(400, "bench_bad_live", "day and active must be integers"))
        self._send(200, json.dumps({"visited": store.live(day, active)}).encode())

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        match = PATH.match(path)
        if match is None:
            return self._send(*NO_ROUTE)
        store = self.stores.get(int(match["n"]), int(match["delay"]), match["kind"])
        if store.delay:
            time.sleep(store.delay)
        args = dict(parse_qsl(query, keep_blank_values=True))
        key, secret = args.get("consumer_key"), args.get("consumer_secret")  # query string first, as Woo does
        if key is None:
            auth = self.headers.get("Authorization") or ""
            if auth.lower().startswith("basic "):
                try:
                    key, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                except ValueError:
                    key = None
        if key != KEY:
            return self._send(*DENIED_KEY)
        if secret != SECRET:
            return self._send(*DENIED_SECRET)
        try:
            per_page = int(args.get("per_page") or 10)
            page = int(args.get("page") or 1)
            offset = int(args["offset"]) if args.get("offset") not in (None, "") else None
        except ValueError:
            return self._send(*NOT_INT)
        if not 1 <= per_page <= 100:
            return self._send(*BAD_PER_PAGE)
        if page < 1:
            return self._send(*BAD_PAGE)
        orderby, order, role = args.get("orderby", "name"), args.get("order", "asc"), args.get("role", "customer")
        if (
            orderby not in ("id", "include")
            or order not in ("asc", "desc")
            or role not in ("all", "customer")
            or any(args.get(f) for f in UNSUPPORTED_FILTERS)
        ):
            return self._send(
                *_error(400, "bench_unsupported", "the pre-rendered fake serves orderby=id, role all|customer only")
            )
        start = offset if offset is not None else (page - 1) * per_page
        body = store.body(max(start, 0), per_page, order == "desc")
        pages = math.ceil(store.n / per_page)
        headers = f"X-WP-Total: {store.n}\r\nX-WP-TotalPages: {pages}\r\n"
        if offset is None:  # Link: prev/next only, in the page form only (as the sandbox does)
            rest = {k: v for k, v in args.items() if k not in ("consumer_key", "consumer_secret", "page")}
            base = f"http://{self.headers.get('Host', '127.0.0.1')}{path}?"
            links = []
            if page > 1:
                links.append(f'<{base}{urlencode({**rest, "page": page - 1})}>; rel="prev"')
            if page < pages:
                links.append(f'<{base}{urlencode({**rest, "page": page + 1})}>; rel="next"')
            if links:
                headers += f"Link: {', '.join(links)}\r\n"
        self._send(200, body, headers.encode())

    def _send(self, status: int, body: bytes, extra: bytes = b"") -> None:
        reason = {200: b"OK", 400: b"Bad Request", 401: b"Unauthorized", 404: b"Not Found"}[status]
        head = (
            b"HTTP/1.1 %d %s\r\nServer: prerendered-woo\r\nDate: %s\r\n"
            % (status, reason, formatdate(usegmt=True).encode())
            + JSON_TYPE
            + extra
            + b"Content-Length: %d\r\n\r\n" % len(body)
        )
        self.wfile.write(head + body)  # one write: headers and the pre-rendered body


def make_server(port: int = 0) -> tuple[ThreadingHTTPServer, Stores]:
    stores = Stores()
    handler = type("BoundHandler", (Handler,), {"stores": stores})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server, stores


def base_url(root: str, *, n: int, delay_ms: int = 0) -> str:
    return f"{root.rstrip('/')}/n{n}/d{delay_ms}"


def selftest(root: str, *, n: int, seconds: float, clients: int) -> dict:
    """Sequential keep-alive GETs of the connector's pages from ``clients`` threads for ``seconds``; req/s.
    The client (Python, on the same 2 cores) is likely the bottleneck: this is a lower bound."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(root)
    stop = time.perf_counter() + seconds
    counts = [0] * clients
    sizes = [0] * clients

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port)
        offsets = list(range(0, n, PER_PAGE - OVERLAP))  # the connector's pages, all pre-rendered
        k = 0
        while time.perf_counter() < stop:
            offset = offsets[k % len(offsets)]
            k += 1
            q = urlencode(
                {
                    "role": "all",
                    "orderby": "id",
                    "order": "asc",
                    "per_page": 100,
                    "offset": offset,
                    "consumer_key": KEY,
                    "consumer_secret": SECRET,
                }
            )
            conn.request("GET", f"/n{n}/d0/wp-json/wc/v3/customers?{q}")
            resp = conn.getresponse()
            sizes[i] += len(resp.read())
            counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "clients": clients,
        "requests": sum(counts),
        "req/s": round(sum(counts) / wall),
        "MB/s": round(sum(sizes) / wall / 1e6, 1),
        "records/s": round(sum(counts) * 100 / wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Pre-rendered WooCommerce customers (and orders) upstream on 127.0.0.1"
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--store", action="append", default=[], metavar="N:DELAY_MS[:orders]", help="build at start (customers)"
    )
    parser.add_argument("--selftest", action="store_true", help="measure this server's req/s, then exit")
    args = parser.parse_args()
    server, stores = make_server(args.port)
    for spec in args.store:
        n, _, rest = spec.partition(":")
        delay, _, kind = rest.partition(":")
        stores.get(int(n), int(delay or 0), kind or "customers")
    root = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    if args.selftest:
        import subprocess

        n = 10_000
        stores.get(n, 0)
        s = stores.get(n, 0)
        print(f"store of {n:,}: {len(s.pages)} pages, {s.bytes / 1e6:.1f} MB, built in {s.build_seconds:.2f} s")
        # The clients in another process, so this server's threads have the GIL to themselves.
        for clients in (1, 2, 4):
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    f"from bench.prerendered import selftest; print(selftest({root!r}, n={n}, "
                    f"seconds=3, clients={clients}))",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            print(out.stdout.strip())
        server.shutdown()
        return
    print(root, flush=True)
    try:
        sys.stdin.read()  # serve until the parent closes our stdin (or dies)
    except KeyboardInterrupt:
        pass
    server.shutdown()


if __name__ == "__main__":
    main()
