"""A local WooCommerce store that speaks the REST v3 dialect of upstream-apis.md §1, for the demo, tests
and benchmarks. Serve it with ``connectors.sandbox.server.serve(sandbox.app)``.

- ``GET /wp-json/wc/v3/{customers,orders,products,coupons}`` (and ``/{id}``): ``page``/``per_page`` (1..100,
  else 400 ``rest_invalid_param``), ``offset`` (wins over ``page``), ``orderby``/``order``, ``role``
  (customers, default ``customer``), ``code`` (coupons), ``modified_after``/``modified_before`` +
  ``dates_are_gmt`` (orders, products, coupons: WC_REST_CRUD_Controller; customers silently ignore them),
  unknown parameters ignored; ``X-WP-Total``, ``X-WP-TotalPages``, ``Link`` with prev/next only; ``[]``
  past the last page.
- Coupons have exactly the keys, order and value types of the published example
  (tests/fixtures/vendor/woocommerce/coupon.json, checked by tests/woocommerce/test_sandbox.py).
- Auth: Basic or ``consumer_key``/``consumer_secret`` in the query; an unknown key is anonymous and gets
  401 ``woocommerce_rest_cannot_view``, a wrong secret 401 ``woocommerce_rest_authentication_error``.
- Deterministic data from ``seed`` and ``size``; mutation helpers; fault knobs; signed webhooks.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import hmac
import itertools
import json
import math
import random
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import format_datetime
from urllib.parse import urlencode

from connectors.sandbox.server import Request, Response, SandboxApp

API = "/wp-json/wc/v3"
SANDBOX_KEY = "ck_sandbox"  # the sandbox's own throwaway keys
SANDBOX_SECRET = "cs_sandbox"
RESOURCES = ("customers", "orders", "products", "coupons")
TOPIC_RESOURCE = {"customers": "customer", "orders": "order", "products": "product", "coupons": "coupon"}
DISCOUNT_TYPES = ["percent", "fixed_cart", "fixed_product"]
FIRST_NAMES = ["Ana", "Bruno", "Carla", "Diego", "Elena", "Fabio", "Gina", "Hugo", "Iris", "Joao", "Karin", "Luis"]
LAST_NAMES = ["Silva", "Souza", "Costa", "Pereira", "Almeida", "Gomez", "Lopez", "Rossi", "Meyer", "Novak"]
ROLES = ["customer"] * 17 + ["subscriber", "shop_manager", "administrator"]
ORDER_STATUSES = ["completed", "processing", "on-hold", "pending", "cancelled", "refunded"]


def _ts(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S")


def _sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def urllib_transport(url: str, body: bytes, headers: dict[str, str]) -> int:
    """Default webhook transport: a real POST (the demo points it at a loopback URL)."""
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - loopback demo URL
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@dataclass
class Faults:
    """Knobs. Counters (``fail_next`` ...) are consumed one request at a time; rates use the seeded rng."""

    error_rate: float = 0.0  # share of list requests answered 500
    fail_next: list[int] = field(default_factory=list)  # statuses for the next list requests (500, 503...)
    rate_limit_next: int = 0  # the next N list requests get 429
    retry_after: str = "1"
    latency: float = 0.0  # seconds added to every request
    malformed_pages: set[int] = field(default_factory=set)  # offsets (or pages) answered with broken JSON
    error_pages: dict[int, int] = field(default_factory=dict)  # offset (or page) -> status, every time
    html_pages: set[int] = field(default_factory=set)  # offsets answered 200 text/html (a caching plugin)
    hang_next: int = 0  # the next N list requests sleep ``hang_seconds`` (client timeouts)
    hang_seconds: float = 0.0


class WooSandbox:
    def __init__(
        self,
        *,
        seed: int = 1,
        size: int = 50,
        orders: int | None = None,
        products: int | None = None,
        coupons: int | None = None,
        consumer_key: str = SANDBOX_KEY,
        consumer_secret: str = SANDBOX_SECRET,
        utc_offset_hours: int = -3,
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.site_offset = dt.timedelta(hours=utc_offset_hours)
        self._now = now
        self.faults = Faults()
        self.lock = threading.RLock()
        self.data: dict[str, dict[int, dict]] = {name: {} for name in RESOURCES}
        self.list_requests = 0
        self.on_list: Callable[[str, dict], None] | None = None  # hook after each list page is computed
        self.webhook_url = ""
        self.webhook_secret = ""
        self.webhook_id = 17
        self.webhook_transport: Callable[[str, bytes, dict[str, str]], int] = urllib_transport
        self.webhooks_sent: list[dict] = []
        # Delivery ids are unique per store for ever (receivers dedupe on them): never restart a sequence.
        self._delivery = itertools.count(int(time.time() * 1000))
        self._build(size, size // 2 if orders is None else orders, max(size // 5, 1) if products is None else products)
        # Coupons draw from their own generator, so adding them left every other record of a seed unchanged.
        self._build_coupons(max(1, min(size // 10, 100)) if coupons is None else coupons)
        self.app = self._make_app()

    # --- data ------------------------------------------------------------------------------------------
    def now(self) -> dt.datetime:
        if self._now is not None:
            return self._now()
        from core import clock

        return clock.now()

    def _stamps(self, created: dt.datetime, modified: dt.datetime) -> dict:
        return {
            "date_created": _ts(created + self.site_offset),
            "date_created_gmt": _ts(created),
            "date_modified": _ts(modified + self.site_offset),
            "date_modified_gmt": _ts(modified),
        }

    def _build(self, n_customers: int, n_orders: int, n_products: int) -> None:
        base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        cid = 0
        for i in range(n_customers):
            cid += self.rng.choice([1, 1, 1, 2, 3])  # deleted users leave gaps in real stores
            created = base + dt.timedelta(hours=7 * i)
            self.data["customers"][cid] = self.make_customer(
                cid, created, created + dt.timedelta(days=self.rng.randint(0, 90))
            )
        for pid in range(1, n_products + 1):
            created = base + dt.timedelta(hours=13 * pid)
            self.data["products"][pid] = self.make_product(
                pid, created, created + dt.timedelta(minutes=self.rng.randint(0, 200_000))
            )
        customer_ids = list(self.data["customers"]) or [0]
        for oid in range(1, n_orders + 1):
            created = base + dt.timedelta(hours=5 * oid)
            cust = self.rng.choice(customer_ids + [0])  # 0 = guest
            self.data["orders"][oid] = self.make_order(
                oid, cust, created, created + dt.timedelta(minutes=self.rng.randint(0, 100_000))
            )

    def _build_coupons(self, n: int) -> None:
        rng = random.Random(self.seed * 7919 + 1)
        base = dt.datetime(2024, 2, 1, tzinfo=dt.UTC)
        for kid in range(1, n + 1):
            created = base + dt.timedelta(hours=11 * kid)
            self.data["coupons"][kid] = self.make_coupon(
                kid, created, created + dt.timedelta(minutes=rng.randint(0, 100_000)), rng=rng
            )

    def make_coupon(
        self, kid: int, created: dt.datetime, modified: dt.datetime, *, rng: random.Random | None = None, **over
    ) -> dict:
        """The published shape, key for key (see the module docstring)."""
        rng = rng or self.rng
        kind = rng.choice(DISCOUNT_TYPES)
        expires = created + dt.timedelta(days=rng.randint(30, 365)) if rng.random() < 0.3 else None
        limit = rng.choice([None, None, 100, 500])
        return {
            "id": kid,
            "code": f"{rng.choice(['sale', 'vip', 'welcome', 'free shipping'])}{kid}",
            "amount": f"{rng.choice([5, 10, 15, 20]):.2f}" if kind == "percent" else f"{rng.randint(1, 50):.2f}",
            **self._stamps(created, modified),
            "discount_type": kind,
            "description": rng.choice(["", "", "Seasonal offer"]),
            "date_expires": _ts(expires + self.site_offset) if expires else None,
            "date_expires_gmt": _ts(expires) if expires else None,
            "usage_count": rng.randint(0, limit or 50),
            "individual_use": rng.random() < 0.5,
            "product_ids": [],
            "excluded_product_ids": [],
            "usage_limit": limit,
            "usage_limit_per_user": rng.choice([None, 1]),
            "limit_usage_to_x_items": None,
            "free_shipping": rng.random() < 0.2,
            "product_categories": [],
            "excluded_product_categories": [],
            "exclude_sale_items": rng.random() < 0.5,
            "minimum_amount": rng.choice(["0.00", "50.00", "100.00"]),
            "maximum_amount": "0.00",
            "email_restrictions": [],
            "used_by": [],
            "meta_data": [],
            "_links": {
                "self": [{"href": f"https://shop.test{API}/coupons/{kid}"}],
                "collection": [{"href": f"https://shop.test{API}/coupons"}],
            },
            **over,
        }

    def make_customer(self, cid: int, created: dt.datetime, modified: dt.datetime, **over) -> dict:
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        email = f"{first.lower()}.{last.lower()}.{cid}@example.test"
        address = {
            "first_name": first,
            "last_name": last,
            "company": self.rng.choice(["", "", "Acme Ltda"]),
            "address_1": f"Rua {self.rng.randint(1, 999)}",
            "address_2": "",
            "city": "Montevideo",
            "state": "MO",
            "postcode": f"{11000 + cid % 900}",
            "country": "UY",
        }
        return {
            "id": cid,
            **self._stamps(created, modified),
            "email": email,
            "first_name": first,
            "last_name": last,
            "role": self.rng.choice(ROLES),
            "username": f"{first.lower()}{cid}",
            "billing": {**address, "email": email, "phone": f"+598 9{cid:07d}"},
            "shipping": dict(address),
            "is_paying_customer": self.rng.random() < 0.6,
            "avatar_url": f"https://secure.gravatar.com/avatar/{cid}",
            "meta_data": [],
            **over,
        }

    def make_product(self, pid: int, created: dt.datetime, modified: dt.datetime, **over) -> dict:
        price = f"{self.rng.randint(500, 50000) / 100:.2f}"
        return {
            "id": pid,
            "name": f"Product {pid}",
            "slug": f"product-{pid}",
            "permalink": f"https://shop.test/p/{pid}",
            **self._stamps(created, modified),
            "type": "simple",
            "status": self.rng.choice(["publish"] * 9 + ["draft"]),
            "sku": f"SKU-{pid:05d}",
            "price": price,
            "regular_price": price,
            "sale_price": "",
            "stock_quantity": self.rng.randint(0, 500),
            "stock_status": "instock",
            "parent_id": 0,
            **over,
        }

    def make_order(self, oid: int, customer_id: int, created: dt.datetime, modified: dt.datetime, **over) -> dict:
        status = self.rng.choice(ORDER_STATUSES)
        qty = self.rng.randint(1, 3)
        product_ids = list(self.data["products"]) or [1]
        pid = self.rng.choice(product_ids)
        unit = self.rng.randint(500, 20000) / 100
        paid = status in ("completed", "processing", "refunded")
        return {
            "id": oid,
            "number": str(oid),
            "status": status,
            "currency": "UYU",
            "total": f"{qty * unit:.2f}",
            "customer_id": customer_id,
            **self._stamps(created, modified),
            "date_paid_gmt": _ts(created) if paid else None,
            "billing": {"first_name": "Buyer", "last_name": str(oid), "email": f"buyer{oid}@example.test"},
            "shipping": {},
            "payment_method": "bacs",
            "line_items": [
                {
                    "id": oid * 10,
                    "product_id": pid,
                    "variation_id": 0,
                    "name": f"Product {pid}",
                    "sku": f"SKU-{pid:05d}",
                    "quantity": qty,
                    "total": f"{qty * unit:.2f}",
                }
            ],
            **over,
        }

    # --- mutation helpers (they fire webhooks when a URL is set) -----------------------------------------
    def create(self, resource: str, **fields) -> dict:
        with self.lock:
            new_id = max(self.data[resource], default=0) + 1
            now = self.now()
            maker = {
                "customers": lambda: self.make_customer(new_id, now, now),
                "products": lambda: self.make_product(new_id, now, now),
                "orders": lambda: self.make_order(new_id, 0, now, now),
                "coupons": lambda: self.make_coupon(new_id, now, now),
            }[resource]
            record = {**maker(), **fields}
            self.data[resource][new_id] = record
        self._notify(resource, "created", record)
        return copy.deepcopy(record)

    def update(self, resource: str, record_id: int, **fields) -> dict:
        with self.lock:
            record = self.data[resource][record_id]
            record.update(fields)
            now = self.now()
            record["date_modified_gmt"] = _ts(now)
            record["date_modified"] = _ts(now + self.site_offset)
            snapshot = copy.deepcopy(record)
        self._notify(resource, "updated", snapshot)
        return snapshot

    def delete(self, resource: str, record_id: int) -> None:
        with self.lock:
            record = self.data[resource].pop(record_id)
        if resource != "customers" or record.get("role") == "customer":  # customer.deleted: customer role only
            self._notify(resource, "deleted", {"id": record_id})

    def trash(self, resource: str, record_id: int) -> dict:
        """Move an order, product or coupon to the trash, as the shop admin does: GET by id still answers
        (``status: "trash"``), lists with the default status leave it out, and WooCommerce fires the
        ``*.deleted`` topic (hook ``wp_trash_post``) with the body ``{"id": N}``."""
        if resource == "customers":
            raise ValueError("customers have no trash in WooCommerce")
        with self.lock:
            record = self.data[resource][record_id]
            record["status"] = "trash"
            now = self.now()
            record["date_modified_gmt"] = _ts(now)
            record["date_modified"] = _ts(now + self.site_offset)
            snapshot = copy.deepcopy(record)
        self._notify(resource, "deleted", {"id": record_id})
        return snapshot

    def ids(self, resource: str) -> list[int]:
        with self.lock:
            return sorted(self.data[resource])

    # --- webhooks ---------------------------------------------------------------------------------------
    def webhook_headers(
        self, topic: str, body: bytes, *, delivery_id: int | None = None, secret: str | None = None
    ) -> dict:
        resource, event = topic.split(".", 1)
        return {
            "Content-Type": "application/json",
            "User-Agent": "WooCommerce/9.0 Hookshot (WordPress/6.5)",
            "X-WC-Webhook-Source": "https://shop.test/",
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event,
            "X-WC-Webhook-ID": str(self.webhook_id),
            "X-WC-Webhook-Delivery-ID": str(delivery_id if delivery_id is not None else next(self._delivery)),
            "X-WC-Webhook-Signature": _sign(body, self.webhook_secret if secret is None else secret),
        }

    def _notify(self, resource: str, event: str, payload: dict) -> None:
        if not self.webhook_url:
            return
        topic = f"{TOPIC_RESOURCE[resource]}.{event}"
        body = json.dumps(payload).encode()
        headers = self.webhook_headers(topic, body)
        status = self.webhook_transport(self.webhook_url, body, headers)
        self.webhooks_sent.append(
            {"topic": topic, "status": status, "delivery_id": headers["X-WC-Webhook-Delivery-ID"]}
        )

    def ping(self) -> int:
        """What WooCommerce sends when the webhook is created: a form post, no X-WC headers."""
        body = urlencode({"webhook_id": self.webhook_id}).encode()
        return self.webhook_transport(self.webhook_url, body, {"Content-Type": "application/x-www-form-urlencoded"})

    # --- HTTP -------------------------------------------------------------------------------------------
    def _make_app(self) -> SandboxApp:
        app = SandboxApp()
        app.record_requests = False
        app.not_found = lambda req: _error(
            404, "rest_no_route", "No route was found matching the URL and request method."
        )

        for name in RESOURCES:
            app.route("GET", f"{API}/{name}")(lambda req, name=name: self._guarded(req, lambda: self._list(req, name)))
            app.route("GET", rf"{API}/{name}/(?P<rid>\d+)")(
                lambda req, name=name: self._guarded(req, lambda: self._one(req, name))
            )
        return app

    def _guarded(self, req: Request, handler: Callable[[], Response]) -> Response:
        if self.faults.latency:
            time.sleep(self.faults.latency)
        denied = self._auth(req)
        return denied or handler()

    def _auth(self, req: Request) -> Response | None:
        key, secret = req.arg("consumer_key"), req.arg("consumer_secret")  # the query string is checked first
        if key is None:
            auth = req.header("authorization") or ""
            if auth.lower().startswith("basic "):
                try:
                    key, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                except ValueError:
                    key = None
        if key != self.consumer_key:
            return _error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        if not hmac.compare_digest(secret or "", self.consumer_secret):
            return _error(401, "woocommerce_rest_authentication_error", "Consumer secret is invalid.")
        return None

    def _fault(self, position: int) -> Response | None:
        f = self.faults
        with self.lock:
            self.list_requests += 1
            if f.hang_next > 0:
                f.hang_next -= 1
                hang = f.hang_seconds
            else:
                hang = 0.0
            if f.rate_limit_next > 0:
                f.rate_limit_next -= 1
                return _error(429, "too_many_requests", "Too many requests.", headers={"Retry-After": f.retry_after})
            if f.fail_next:
                status = f.fail_next.pop(0)
                return _error(status, "internal_server_error", "There has been a critical error on this website.")
            if f.error_rate and self.rng.random() < f.error_rate:
                return _error(500, "internal_server_error", "There has been a critical error on this website.")
            if position in f.error_pages:
                return _error(f.error_pages[position], "internal_server_error", "There has been a critical error.")
            if position in f.html_pages:
                return Response(
                    200, b"<!DOCTYPE html><html><body>Cached page</body></html>", {"Content-Type": "text/html"}
                )
            if position in f.malformed_pages:
                return Response(200, b'[{"id": 1, "email": ', {"Content-Type": "application/json"})
        if hang:
            time.sleep(hang)
        return None

    def _list(self, req: Request, name: str) -> Response:
        try:
            per_page = int(req.arg("per_page", "10") or "10")
            page = int(req.arg("page", "1") or "1")
            offset = int(req.arg("offset")) if req.arg("offset") not in (None, "") else None
        except ValueError:
            return _invalid("per_page", "per_page is not of type integer.")
        if not 1 <= per_page <= 100:
            return _invalid("per_page", "per_page must be between 1 (inclusive) and 100 (inclusive)")
        if page < 1:
            return _invalid("page", "page must be greater than or equal to 1")
        start = offset if offset is not None else (page - 1) * per_page
        fault = self._fault(offset if offset is not None else page)
        if fault is not None:
            return fault
        with self.lock:
            rows = self._filtered(req, name)
            if isinstance(rows, Response):
                return rows
            total = len(rows)
            chunk = copy.deepcopy(rows[start : start + per_page])
            served_at = self.now()  # the moment this page was read
        if self.on_list is not None:
            self.on_list(name, {"offset": start, "per_page": per_page, "count": len(chunk)})
        pages = math.ceil(total / per_page) if total else 0
        # The store's clock (the client caps its cursor with it); wsgiref would otherwise send the wall clock.
        headers = {
            "X-WP-Total": str(total),
            "X-WP-TotalPages": str(pages),
            "Date": format_datetime(served_at, usegmt=True),
        }
        links = []
        base = f"https://shop.test{API}/{name}"
        if page > 1 and offset is None:
            links.append(f'<{base}?{urlencode({**req_args(req), "page": page - 1})}>; rel="prev"')
        if page < pages and offset is None:
            links.append(f'<{base}?{urlencode({**req_args(req), "page": page + 1})}>; rel="next"')
        if links:
            headers["Link"] = ", ".join(links)
        return Response.json(chunk, headers=headers)

    def _filtered(self, req: Request, name: str) -> list[dict] | Response:
        rows = list(self.data[name].values())
        if name == "customers":
            role = req.arg("role", "customer")
            if role != "all":
                rows = [r for r in rows if r.get("role") == role]
            if req.arg("email"):
                rows = [r for r in rows if r.get("email") == req.arg("email")]
            orderby = req.arg("orderby", "name")
            keys = {
                "id": lambda r: r["id"],
                "registered_date": lambda r: (r["date_created_gmt"], r["id"]),
                "name": lambda r: (r.get("first_name", "") + " " + r.get("last_name", ""), r["id"]),
                "include": lambda r: r["id"],
            }
            default_order = "asc"
        else:
            gmt = (req.arg("dates_are_gmt") or "").lower() in ("1", "true")
            field_ = "date_modified_gmt" if gmt else "date_modified"
            for arg, keep in (("modified_after", lambda v, b: v > b), ("modified_before", lambda v, b: v < b)):
                bound = req.arg(arg)
                if bound:
                    bound = bound.replace("Z", "")[:19]
                    rows = [r for r in rows if keep(r[field_], bound)]
            if req.arg("status") not in (None, "", "any"):
                rows = [r for r in rows if r.get("status") == req.arg("status")]
            else:  # "any" (the default) leaves the trash out, as WP_Query does
                rows = [r for r in rows if r.get("status") != "trash"]
            if name == "coupons" and req.arg("code"):
                rows = [r for r in rows if r["code"] == req.arg("code").strip().lower()]
            orderby = req.arg("orderby", "date")
            keys = {
                "id": lambda r: r["id"],
                "date": lambda r: (r["date_created_gmt"], r["id"]),
                "modified": lambda r: (r["date_modified_gmt"], r["id"]),
                "title": lambda r: (r.get("name", r.get("code", "")), r["id"]),
                "include": lambda r: r["id"],
            }
            default_order = "desc"
        if orderby not in keys:
            return _invalid("orderby", f"orderby is not one of {', '.join(keys)}.")
        order = req.arg("order", default_order)
        rows.sort(key=keys[orderby], reverse=order == "desc")
        return rows

    def _one(self, req: Request, name: str) -> Response:
        with self.lock:
            record = self.data[name].get(int(req.match["rid"]))
            if record is None:
                code = {
                    "orders": "woocommerce_rest_shop_order_invalid_id",
                    "products": "woocommerce_rest_product_invalid_id",
                    "customers": "woocommerce_rest_invalid_id",
                    "coupons": "woocommerce_rest_shop_coupon_invalid_id",
                }[name]
                return _error(404, code, "Invalid ID.")
            return Response.json(copy.deepcopy(record))


def req_args(req: Request) -> dict:
    return {k: v[0] for k, v in req.query.items() if k not in ("consumer_key", "consumer_secret", "page")}


def _error(status: int, code: str, message: str, *, headers: dict | None = None, extra: dict | None = None) -> Response:
    return Response.json(
        {"code": code, "message": message, "data": {"status": status, **(extra or {})}}, status, headers
    )


def _invalid(param: str, detail: str) -> Response:
    return _error(400, "rest_invalid_param", f"Invalid parameter(s): {param}", extra={"params": {param: detail}})
