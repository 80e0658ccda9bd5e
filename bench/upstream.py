"""A WooCommerce-like customer upstream for the chaos suite (tests/chaos), and the customer generator
(``customer(i)``) the benchmarks' generated Woo sandbox stores serve (bench/woo_upstream.py).

Speaks the Woo REST v3 dialect of /work/shared/upstream-apis.md §1 for ``GET /wp-json/wc/v3/customers``:
``page``/``per_page`` (max 100), a JSON array, ``X-WP-Total`` / ``X-WP-TotalPages`` and a ``Link`` header
with rel="next"/"prev" only; a page past the end is ``200 []``.

Records are generated deterministically from their id, so the upstream holds no data set in memory and a
benchmark or a test can compute the truth (``customer(i)``) without asking the server.

The base URL carries the knobs, so one server serves every scenario: ``/n<records>/d<delay ms>/...``
(e.g. ``http://127.0.0.1:PORT/n10000/d50``). Faults for the chaos suite are set on the ``WooLikeUpstream``
object (``faults``), keyed by page number. It checks no auth and knows no ``offset``: the benchmarks use
the real sandbox instead (bench/woo_upstream.py), which speaks the dialect the real connector needs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from connectors.sandbox.server import Request, Response, SandboxApp

PATH = r"/n(?P<n>\d+)/d(?P<delay>\d+)/wp-json/wc/v3/customers"
MAX_PER_PAGE = 100

_CREATED, _MODIFIED = dt.datetime(2024, 1, 1), dt.datetime(2025, 1, 1)  # naive: WooCommerce's *_gmt form
_LAST_ACTIVE = 1764547200  # 2025-12-01 00:00 UTC
FIRST = ["Ana", "Bruno", "Carla", "Diego", "Elena", "Fabio", "Gala", "Hugo", "Irene", "Joaquín", "Karin", "Lucía"]
LAST = ["Pérez", "García", "Smith", "Müller", "Rossi", "Silva", "Kowalski", "Dubois", "Nakamura", "O'Brien"]


def visited(i: int, day: int, per_mille: int) -> bool:
    """Whether customer ``i`` logged in on ``day`` (1, 2, ...): ``per_mille`` customers in a thousand, the same
    ones for the same day whoever asks (a CRC of the id and the day). Only that day's visits: a store served
    on day 2 forgets day 1's (B1's --live-variant serves day 1 only)."""
    return day > 0 and zlib.crc32(b"%d:%d" % (i, day)) % 1000 < per_mille


def _address(i: int, first: str, last: str, company: str) -> dict:
    """A WooCommerce address (billing without its email and phone, or shipping without its phone)."""
    return {
        "first_name": first,
        "last_name": last,
        "company": company,
        "address_1": f"{i % 500 + 1} Calle Mayor",
        "address_2": "",
        "city": "Madrid",
        "state": "M",
        "postcode": f"{28000 + i % 999}",
        "country": "ES",
    }


def customer(i: int, *, generation: int = 0, day: int = 0, active_per_mille: int = 0) -> dict:
    """The Woo v3 customer with id ``i`` (about 1.3 kB of JSON, like a real store's). ``day`` and
    ``active_per_mille``: a live store ``day`` days after the first scan, where that share of customers logged in
    on that day (``visited``): their ``wc_last_active`` moves, nothing else does (date_modified included), as
    WooCommerce updates it on a customer's first logged-in visit of a day."""
    first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
    # Every customer's times are its own, as in a real store (one signed up every 37 s): the former pattern
    # repeated every 840 ids, so the engine's parsed-time cache (core.timestamps) hit where real data misses,
    # flattering the engine by ~4 us a customer (docs/performance.md, issue 20, nineteenth pass).
    created = (_CREATED + dt.timedelta(seconds=37 * i)).isoformat()
    modified = (_MODIFIED + dt.timedelta(seconds=37 * i + generation)).isoformat()
    email = f"customer{i}@example.com"
    last_active = _LAST_ACTIVE + 86400 * day if visited(i, day, active_per_mille) else _LAST_ACTIVE - 86400 * (i % 365)
    address = _address(i, first, last, f"Company {i % 997}" if i % 3 == 0 else "")
    return {
        "id": i,
        "date_created": created,
        "date_created_gmt": created,
        "date_modified": modified,
        "date_modified_gmt": modified,
        "email": email,
        "first_name": first,
        "last_name": last,
        "role": "customer",
        "username": f"customer{i}",
        "billing": {**address, "email": email, "phone": f"+34 600 {i % 1000:03d} {i % 997:03d}"},
        "shipping": {**address, "phone": ""},
        "is_paying_customer": i % 4 == 0,
        # Gravatar's: the MD5 of the email, in hex (the REST docs' example customer, woocommerce-rest-api-docs
        # wp-api-v3/_customers.md: ".../avatar/8eb1b522f60d11fa897de1dc6351b7e8?s=96"). It was "{i:032x}" until
        # issue 20's twenty-third pass: a run of 19+ zeros in every record, which a real hash almost never
        # has, so connectors.base's long-integer guard stopped at the first record here and read real pages
        # to the end (~1 ms a page, docs/performance.md).
        "avatar_url": f"https://secure.gravatar.com/avatar/{hashlib.md5(email.encode()).hexdigest()}?s=96&d=mm&r=g",
        "meta_data": [
            {"id": i * 10 + 1, "key": "_newsletter", "value": "yes" if i % 2 else "no"},
            # WooCommerce's own: the day (midnight UTC, a Unix time as text) of the customer's last logged-in
            # visit, updated without touching date_modified (clients read it from this list: public code
            # filtering meta_data for "wc_last_active"; a store's usermeta dump holds '1723161600').
            {"id": i * 10 + 2, "key": "wc_last_active", "value": str(last_active)},
            # What a customer who checked out carries too (a store's GET /customers in woocommerce/woocommerce
            # #28068: "shipping_method" with a list value, beside wc_last_active).
            *([{"id": i * 10 + 3, "key": "shipping_method", "value": ["flat_rate:2"]}] if i % 4 == 0 else []),
        ],
        "_links": {
            # targetHints: WordPress 6.7+ adds what the caller may do with the item to its self link
            # (WP_REST_Server::get_target_hints_for_link).
            "self": [
                {
                    "href": f"https://shop.example.com/wp-json/wc/v3/customers/{i}",
                    "targetHints": {"allow": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
                }
            ],
            "collection": [{"href": "https://shop.example.com/wp-json/wc/v3/customers"}],
        },
    }


ORDER_STATUSES = ["processing", "completed", "completed", "completed", "on-hold", "pending", "cancelled", "refunded"]
PAID = {"processing", "completed", "refunded"}


def order(i: int) -> dict:
    """The Woo v3 order with id ``i``, shaped as the REST API docs' example order (woocommerce-rest-api-docs,
    wp-api-v3/_orders.md, "Retrieve an order", order 727; tests/fixtures/vendor/woocommerce/order.json): the
    same keys, nesting and kinds of value, with 1 to 4 line items (``i % 4 + 1``), each like that example's
    (a taxes list, and on every other one a variation's attributes in its meta_data), a tax line and a
    shipping line. Every order's times, addresses and amounts are its own. About 2.3-3.6 kB of JSON."""
    first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
    created = _CREATED + dt.timedelta(seconds=53 * i)
    modified = created + dt.timedelta(seconds=6 + i % 3600)
    status = ORDER_STATUSES[i % len(ORDER_STATUSES)]
    paid = created + dt.timedelta(seconds=6) if status in PAID else None
    completed = modified if status == "completed" else None
    items, subtotal, tax = [], 0, 0
    for n in range(i % 4 + 1):
        quantity, cents = 1 + (i + n) % 3, 300 + (i * 7 + n * 131) % 9700
        line, line_tax = quantity * cents, quantity * cents * 75 // 1000
        subtotal, tax = subtotal + line, tax + line_tax
        variation = (i + n) % 2 == 1
        items.append(
            {
                "id": i * 10 + n,
                "name": f"Product {(i * 31 + n) % 5000}" + (" - Black, M" if variation else ""),
                "product_id": (i * 31 + n) % 5000 + 1,
                "variation_id": (i * 31 + n) % 5000 + 5001 if variation else 0,
                "quantity": quantity,
                "tax_class": "",
                "subtotal": f"{line / 100:.2f}",
                "subtotal_tax": f"{line_tax / 100:.2f}",
                "total": f"{line / 100:.2f}",
                "total_tax": f"{line_tax / 100:.2f}",
                "taxes": [{"id": 75, "total": f"{line_tax / 100:.2f}", "subtotal": f"{line_tax / 100:.2f}"}],
                "meta_data": [
                    {"id": i * 100 + 2 * n, "key": "pa_color", "value": "black"},
                    {"id": i * 100 + 2 * n + 1, "key": "size", "value": "M"},
                ]
                if variation
                else [],
                "sku": f"SKU-{(i * 31 + n) % 5000:05d}",
                "price": cents / 100,
            }
        )
    shipping = 1000
    email = f"customer{i}@example.com"
    address = _address(i, first, last, "")

    def woo(value):  # WooCommerce's time form: seconds, no zone (the *_gmt ones are UTC)
        return value.isoformat(timespec="seconds") if value is not None else None

    return {
        "id": i,
        "parent_id": 0,
        "number": str(i),
        "order_key": f"wc_order_{hashlib.md5(b'%d' % i).hexdigest()[:13]}",
        "created_via": "checkout",
        "version": "9.4.2",
        "status": status,
        "currency": "EUR",
        "date_created": woo(created),
        "date_created_gmt": woo(created),
        "date_modified": woo(modified),
        "date_modified_gmt": woo(modified),
        "discount_total": "0.00",
        "discount_tax": "0.00",
        "shipping_total": f"{shipping / 100:.2f}",
        "shipping_tax": "0.00",
        "cart_tax": f"{tax / 100:.2f}",
        "total": f"{(subtotal + tax + shipping) / 100:.2f}",
        "total_tax": f"{tax / 100:.2f}",
        "prices_include_tax": False,
        "customer_id": 0 if i % 5 == 0 else 1 + i % 100_000,  # one in five a guest checkout
        "customer_ip_address": f"10.{i % 256}.{i // 256 % 256}.{i // 65536 % 256}",
        "customer_user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "customer_note": "",
        "billing": {**address, "email": email, "phone": f"+34 600 {i % 1000:03d} {i % 997:03d}"},
        "shipping": address,
        "payment_method": "bacs",
        "payment_method_title": "Direct Bank Transfer",
        "transaction_id": "",
        "date_paid": woo(paid),
        "date_paid_gmt": woo(paid),
        "date_completed": woo(completed),
        "date_completed_gmt": woo(completed),
        "cart_hash": hashlib.md5(b"cart%d" % i).hexdigest(),
        "meta_data": [{"id": i * 100 + 90, "key": "_download_permissions_granted", "value": "yes"}],
        "line_items": items,
        "tax_lines": [
            {
                "id": i * 10 + 8,
                "rate_code": "ES-IVA-1",
                "rate_id": 75,
                "label": "IVA",
                "compound": False,
                "tax_total": f"{tax / 100:.2f}",
                "shipping_tax_total": "0.00",
                "meta_data": [],
            }
        ],
        "shipping_lines": [
            {
                "id": i * 10 + 9,
                "method_title": "Flat Rate",
                "method_id": "flat_rate",
                "total": f"{shipping / 100:.2f}",
                "total_tax": "0.00",
                "taxes": [],
                "meta_data": [],
            }
        ],
        "fee_lines": [],
        "coupon_lines": [],
        "refunds": [],
        "_links": {
            "self": [{"href": f"https://shop.example.com/wp-json/wc/v3/orders/{i}"}],
            "collection": [{"href": "https://shop.example.com/wp-json/wc/v3/orders"}],
        },
    }


# A fault handler gets (request, page number, attempt number for that page) and returns a Response to
# send instead of the real page, or None to serve the page normally.
Fault = Callable[[Request, int, int], "Response | None"]


@dataclass
class WooLikeUpstream:
    """The server's state: per-page faults and counters (the chaos suite inspects them)."""

    faults: dict[int, Fault] = field(default_factory=dict)
    # Replace or patch records: page -> function(list of records) -> list of records.
    rewrite: dict[int, Callable[[list[dict]], list[dict]]] = field(default_factory=dict)
    # Pagination that never ends: every page links a next one, and pages past the end repeat the last
    # real page (X-WP-TotalPages stays honest, as a buggy plugin would leave it).
    endless: bool = False
    # Make every page's Link rel="next" point back at this page number (pagination that repeats).
    repeat_next_at: int | None = None
    generation: int = 0
    hits: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> SandboxApp:
        app = SandboxApp()
        app.record_requests = False  # 1,000 pages x N runs: do not keep every request

        @app.route("GET", PATH)
        def customers(req: Request) -> Response:
            return self.page(req)

        return app

    def page(self, req: Request) -> Response:
        n, delay = int(req.match["n"]), int(req.match["delay"])
        if delay:
            time.sleep(delay / 1000)
        try:
            page = int(req.arg("page", "1") or 1)
            per_page = int(req.arg("per_page", "10") or 10)
        except ValueError:
            return Response.json(
                {"code": "rest_invalid_param", "message": "Invalid parameter(s): page", "data": {"status": 400}}, 400
            )
        if not 1 <= per_page <= MAX_PER_PAGE:
            return Response.json(
                {
                    "code": "rest_invalid_param",
                    "message": "Invalid parameter(s): per_page",
                    "data": {
                        "status": 400,
                        "params": {"per_page": "per_page must be between 1 (inclusive) and 100 (inclusive)"},
                    },
                },
                400,
            )
        with self.lock:
            attempt = self.hits[page] = self.hits.get(page, 0) + 1
        fault = self.faults.get(page)
        if fault is not None:
            injected = fault(req, page, attempt)
            if injected is not None:
                return injected
        pages = -(-n // per_page)
        start = (min(page, pages) if self.endless else page) * per_page - per_page + 1
        records = [customer(i, generation=self.generation) for i in range(start, min(start + per_page, n + 1))]
        if page in self.rewrite:
            records = self.rewrite[page](records)
        base = req.path
        links = []
        if page > 1:
            links.append(f'<{base}?page={page - 1}&per_page={per_page}>; rel="prev"')
        if page < pages or self.endless:
            nxt = self.repeat_next_at if self.repeat_next_at is not None else page + 1
            links.append(f'<{base}?page={nxt}&per_page={per_page}>; rel="next"')
        headers = {"X-WP-Total": str(n), "X-WP-TotalPages": str(pages)}
        if links:
            headers["Link"] = ", ".join(links)
        return Response(
            200, json.dumps(records).encode(), {"Content-Type": "application/json; charset=UTF-8", **headers}
        )


def base_url(root: str, *, n: int, delay_ms: int = 0) -> str:
    return f"{root}/n{n}/d{delay_ms}"
