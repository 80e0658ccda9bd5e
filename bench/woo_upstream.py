"""The real WooCommerce sandbox (connectors/woocommerce/sandbox.py) holding a large generated store, for the
benchmarks: B1/B2/B4/B8 run the real connectors/woocommerce connector against it.

Everything a request sees is the sandbox's own code: auth (query keys or Basic; 401 for an unknown key or
a wrong secret), parameter checks (``per_page`` 1..100, ``offset`` wins over ``page``, ``orderby``/``order``,
``role``), ``X-WP-Total``/``X-WP-TotalPages``/``Link``/``Date`` headers and the ``latency`` fault used as the
per-page delay of B8. Only where the customers come from differs: instead of a dict built up front they
are generated from their id (``bench.upstream.customer``, about 1.3 kB of JSON each), so a store of 100,000
customers costs nothing to hold and a page costs the same at any size.

One process serves every scenario: a store lives under ``/n<customers>/d<delay ms>`` (a store in a
subdirectory, which the connector supports like any real one), e.g. ``http://127.0.0.1:PORT/n10000/d50``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence

from bench.upstream import customer
from connectors.sandbox.server import Request, Response, SandboxApp, serve
from connectors.woocommerce.sandbox import SANDBOX_KEY, SANDBOX_SECRET, WooSandbox

KEY, SECRET = SANDBOX_KEY, SANDBOX_SECRET


class _Fresh(list):
    """Records generated for this one request: nobody else holds them, so the sandbox's defensive
    ``deepcopy`` would only burn the upstream's CPU (which the reference would then pay on every page)."""

    def __deepcopy__(self, memo) -> _Fresh:
        return self


class GeneratedCustomers(Mapping):
    """``id -> customer`` for ids 1..n, generated on demand; read-only."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __getitem__(self, cid) -> dict:
        if isinstance(cid, int) and 1 <= cid <= self.n:
            return customer(cid)
        raise KeyError(cid)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(range(1, self.n + 1))


class _IdOrdered(Sequence):
    """The store's customers sorted by id (ascending or descending); a slice generates only its records."""

    def __init__(self, n: int, *, descending: bool) -> None:
        self.n, self.descending = n, descending

    def __len__(self) -> int:
        return self.n

    def _id(self, position: int) -> int:
        return self.n - position if self.descending else position + 1

    def __getitem__(self, index):
        if isinstance(index, slice):
            return _Fresh(customer(self._id(p)) for p in range(*index.indices(self.n)))
        if not -self.n <= index < self.n:
            raise IndexError(index)
        return customer(self._id(index % self.n))


class GeneratedWooSandbox(WooSandbox):
    """A ``WooSandbox`` whose customers are ``GeneratedCustomers(n)`` (no orders or products)."""

    def __init__(self, customers: int, *, delay_ms: int = 0) -> None:
        # A fixed clock source without Django: this runs in a plain process.
        super().__init__(size=0, orders=0, products=0, now=lambda: dt.datetime.now(dt.UTC))
        self.data["customers"] = GeneratedCustomers(customers)
        self.faults.latency = delay_ms / 1000  # the sandbox sleeps this long before answering any request

    def _filtered(self, req: Request, name: str):
        rows = self.data[name]
        # Every generated customer has role "customer"; id order is the only one computable without
        # generating the whole store. Anything else (another order, an email filter) falls back to the
        # sandbox's own filtering over every record: correct, but O(n) per request.
        if (
            name == "customers"
            and isinstance(rows, GeneratedCustomers)
            and req.arg("role", "customer") in ("all", "customer")
            and not req.arg("email")
            and req.arg("orderby", "name") in ("id", "include")
            and req.arg("order", "asc") in ("asc", "desc")
        ):
            return _IdOrdered(len(rows), descending=req.arg("order", "asc") == "desc")
        return super()._filtered(req, name)


class Stores:
    """Dispatches ``/n<customers>/d<delay>/...`` to one ``GeneratedWooSandbox`` per (customers, delay)."""

    PATH = r"/n(?P<n>\d+)/d(?P<delay>\d+)(?P<rest>/.*)"

    def __init__(self) -> None:
        self.stores: dict[tuple[int, int], GeneratedWooSandbox] = {}
        self.lock = threading.Lock()

    def store(self, n: int, delay_ms: int) -> GeneratedWooSandbox:
        with self.lock:
            if (n, delay_ms) not in self.stores:
                self.stores[(n, delay_ms)] = GeneratedWooSandbox(n, delay_ms=delay_ms)
            return self.stores[(n, delay_ms)]

    def app(self) -> SandboxApp:
        app = SandboxApp()
        app.record_requests = False  # thousands of pages per run: keep none of them

        @app.route("GET", self.PATH)
        def forward(req: Request) -> Response:
            sandbox = self.store(int(req.match["n"]), int(req.match["delay"]))
            req.path = req.match["rest"]
            return sandbox.app.dispatch(req)

        return app


def base_url(root: str, *, n: int, delay_ms: int = 0) -> str:
    return f"{root.rstrip('/')}/n{n}/d{delay_ms}"


def main() -> None:
    """Serve the stores in their own process (keeps the upstream's CPU off the measured process's GIL)."""
    parser = argparse.ArgumentParser(description="The WooCommerce sandbox with generated stores, on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with serve(Stores().app(), port=args.port) as root:
        print(root, flush=True)
        try:
            sys.stdin.read()  # serve until the parent closes our stdin (or dies)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
