"""A faithful local Tiendanube: several stores, the OAuth authorize + token endpoints, the leaky bucket
(headers and 429s), the `Authentication` header, 400 without a User-Agent, x-total-count + Link, the
10,000-result cap, 401 after uninstall, and webhook sending (signed like the real one, in the documented
shapes: store events ``{"store_id", "event", "id"}``; the LGPD events without an ``event`` key, each to its
own URL, as tests/fixtures/vendor/tiendanube/lgpd_*.json).

    sb = TiendanubeSandbox(stores=2, records=30)
    with serve(sb.app) as base:  # http://127.0.0.1:<port>
        ...  # API at {base}/v1/{store_id}/, authorize at {base}/apps/{app_id}/authorize
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import requests

from connectors.sandbox.server import Request, Response, SandboxApp

RESOURCES = ("products", "orders", "customers")
LGPD_EVENTS = ("store/redact", "customers/redact", "customers/data_request")
BASE_TIME = dt.datetime(2025, 12, 1, tzinfo=dt.UTC)


def _fmt(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S+0000")  # Tiendanube's own format


def _parse(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@dataclass
class Store:
    store_id: str
    name: str
    token: str = ""
    installed: bool = False
    data: dict[str, list[dict]] = field(default_factory=lambda: {r: [] for r in RESOURCES})
    level: float = 0.0  # the leaky bucket
    leaked_at: float = field(default_factory=time.monotonic)


SANDBOX_SECRET = "sandbox-app-secret"  # the fake app's own secret, loopback only


class TiendanubeSandbox:
    def __init__(
        self,
        *,
        stores: int = 2,
        records: int = 25,
        app_id: str = "4242",
        client_secret: str = SANDBOX_SECRET,
        bucket_size: int = 40,
        drain: float = 2.0,
        result_cap: int = 10_000,
        redirect_uri: str = "",
        base_time: dt.datetime = BASE_TIME,
    ) -> None:
        self.app = SandboxApp()
        self.app_id = app_id
        self.client_secret = client_secret
        self.bucket_size = bucket_size
        self.drain = drain
        self.result_cap = result_cap
        self.redirect_uri = redirect_uri
        self.base_time = base_time
        self.lock = threading.RLock()
        self.codes: dict[str, str] = {}
        self.stores: dict[str, Store] = {}
        self.count_429 = 0
        self.api_calls = 0
        for i in range(stores):
            self.add_store(str(1001 + i), records=records)
        self._routes()

    # --- data ----------------------------------------------------------------------------------------
    def add_store(self, store_id: str, *, records: int) -> Store:
        store = Store(store_id=store_id, name=f"Sandbox store {store_id}")
        for n in range(1, records + 1):
            self._add_records(store, n)
        self.stores[store_id] = store
        return store

    def _add_records(self, store: Store, n: int, *, when: dt.datetime | None = None) -> None:
        sid = int(store.store_id)
        at = when or self.base_time + dt.timedelta(minutes=n)
        stamp = {"created_at": _fmt(at), "updated_at": _fmt(at)}
        store.data["products"].append(
            {
                "id": sid * 100_000 + n,
                "name": {"es": f"Producto {n}", "pt": f"Produto {n}"},
                "handle": {"es": f"producto-{n}"},
                "published": n % 7 != 0,
                "brand": "Acme",
                "tags": "demo",
                "variants": [
                    {
                        "id": sid * 1_000_000 + n,
                        "price": f"{10 + n}.00",
                        "promotional_price": None,
                        "stock": n % 5,
                        "sku": f"SKU-{sid}-{n}",
                    }
                ],
                **stamp,
            }
        )
        store.data["customers"].append(
            {
                "id": sid * 100_000 + n,
                "name": f"Cliente{n} Apellido{n}",
                "email": f"cliente{n}@store{sid}.example",
                "phone": f"+54 11 5555 {n:04d}",
                "identification": f"{20000000 + n}",
                "total_spent": f"{n * 3}.50",
                "billing_city": "Buenos Aires",
                "accepts_marketing": n % 2 == 0,
                **stamp,
            }
        )
        store.data["orders"].append(
            {
                "id": sid * 100_000 + n,
                "number": 100 + n,
                "status": "open",
                "payment_status": "paid",
                "currency": "ARS",
                "total": f"{10 + n}.00",
                "contact_email": f"cliente{n}@store{sid}.example",
                "customer": {"id": sid * 100_000 + n, "email": f"cliente{n}@store{sid}.example"},
                "products": [
                    {
                        "product_id": sid * 100_000 + n,
                        "variant_id": sid * 1_000_000 + n,
                        "name": f"Producto {n}",
                        "quantity": 1,
                        "price": f"{10 + n}.00",
                        "sku": f"SKU-{sid}-{n}",
                    }
                ],
                **stamp,
            }
        )

    def touch(self, store_id: str, resource: str, record_id: int, when: dt.datetime, **changes) -> None:
        with self.lock:
            for rec in self.stores[store_id].data[resource]:
                if rec["id"] == record_id:
                    rec.update(changes, updated_at=_fmt(when))

    def remove(self, store_id: str, resource: str, record_id: int) -> None:
        """The merchant deletes a record: GET by id answers 404 from now on."""
        with self.lock:
            data = self.stores[store_id].data
            data[resource] = [rec for rec in data[resource] if rec["id"] != record_id]

    def uninstall(self, store_id: str, *, webhook_url: str = "") -> requests.Response | None:
        """The merchant removes the app: the token dies (401 from now on); optionally tell the app."""
        with self.lock:
            store = self.stores[store_id]
            store.installed = False
            store.token = ""
        if webhook_url:
            return self.send_webhook(webhook_url, store_id, "app/uninstalled", int(self.app_id))
        return None

    # --- webhooks ------------------------------------------------------------------------------------
    def sign(self, body: bytes) -> str:
        return hmac.new(self.client_secret.encode(), body, hashlib.sha256).hexdigest()

    def _signed(self, payload: dict) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(payload).encode()
        return body, {"Content-Type": "application/json", "X-Linkedstore-HMAC-SHA256": self.sign(body)}

    def webhook(self, store_id: str, event: str, object_id) -> tuple[bytes, dict[str, str]]:
        """A store event, ``{"store_id", "event", "id"}`` (webhook_product_created.json)."""
        if event in LGPD_EVENTS:
            raise ValueError(f"{event} has its own shape and URL: use lgpd_webhook()")
        return self._signed({"store_id": int(store_id), "event": event, "id": object_id})

    def lgpd_webhook(
        self,
        event: str,
        store_id: str,
        *,
        customer_id: int | None = None,
        orders: list[int] | None = None,
        data_request_id: int = 1,
        store_id_as_string: bool = True,
    ) -> tuple[bytes, dict[str, str]]:
        """An LGPD event as the platform (and its LGPD testing tool) sends it: no ``event`` key. store/redact
        sends the numeric id; the customer events send ``store_id`` as the tool does (a string)."""
        if event == "store/redact":
            return self._signed({"store_id": int(store_id)})
        if event not in LGPD_EVENTS:
            raise ValueError(f"not an LGPD event: {event}")
        with self.lock:
            rec = next(c for c in self.stores[store_id].data["customers"] if c["id"] == customer_id)
            customer = {k: rec.get(k) for k in ("id", "email", "phone", "identification")}
        sid = str(int(store_id)) if store_id_as_string else int(store_id)
        if event == "customers/redact":
            return self._signed({"store_id": sid, "customer": customer, "orders_to_redact": list(orders or [])})
        return self._signed(
            {
                "store_id": sid,
                "customer": customer,
                "orders_requested": list(orders or []),
                "checkouts_requested": [],
                "drafts_orders_requested": [],
                "data_request": {"id": data_request_id},
            }
        )

    def send_webhook(self, url: str, store_id: str, event: str, object_id) -> requests.Response:
        body, headers = self.webhook(store_id, event, object_id)
        return requests.post(url, data=body, headers=headers, timeout=10, allow_redirects=False)

    def send_lgpd(self, url: str, event: str, store_id: str, **kw) -> requests.Response:
        """Post an LGPD event to the URL configured for it (ours: /connectors/tiendanube/webhooks/<event>/)."""
        body, headers = self.lgpd_webhook(event, store_id, **kw)
        return requests.post(url, data=body, headers=headers, timeout=10, allow_redirects=False)

    # --- HTTP ----------------------------------------------------------------------------------------
    def _routes(self) -> None:
        app = self.app
        app.route("GET", r"/apps/(?P<app_id>[^/]+)/authorize")(self.authorize)
        app.route("POST", r"/apps/authorize/token")(self.token)
        app.route("GET", r"/v1/(?P<store>\d+)/store")(self.store_info)
        app.route("GET", r"/v1/(?P<store>\d+)/(?P<resource>products|orders|customers)")(self.list_records)
        app.route("GET", r"/v1/(?P<store>\d+)/(?P<resource>products|orders|customers)/(?P<id>\d+)")(self.get_record)

    def authorize(self, req: Request) -> Response:
        """The merchant's browser step, simulated: pick ?store= (or the first store not yet installed),
        issue a code and redirect to the app's redirect URL with code and state."""
        if req.match["app_id"] != self.app_id:
            return Response.json({"error": "app not found"}, 404)
        with self.lock:
            store_id = req.arg("store") or next((s for s, st in self.stores.items() if not st.installed), None)
            if store_id not in self.stores:
                return Response.json({"error": "no store to install"}, 400)
            code = secrets.token_hex(16)
            self.codes[code] = store_id
        query = {"code": code}
        if req.arg("state") is not None:
            query["state"] = req.arg("state")
        redirect = req.arg("redirect_uri") or self.redirect_uri
        return Response(302, b"", {"Location": f"{redirect}?{urlencode(query)}"})

    def token(self, req: Request) -> Response:
        form = req.form()
        if form.get("client_id") != self.app_id or form.get("client_secret") != self.client_secret:
            return Response.json({"error": "invalid_client", "error_description": "bad client credentials"}, 401)
        if form.get("grant_type") != "authorization_code":
            return Response.json({"error": "unsupported_grant_type"}, 400)
        with self.lock:
            store_id = self.codes.pop(form.get("code", ""), None)
            if store_id is None:
                return Response.json(
                    {"error": "invalid_grant", "error_description": "The authorization code is invalid"}, 400
                )
            store = self.stores[store_id]
            store.token = secrets.token_hex(20)  # a new token kills the old one
            store.installed = True
        return Response.json(
            {
                "access_token": store.token,
                "token_type": "bearer",
                "scope": "read_products,read_orders,read_customers",
                "user_id": store_id,
            }
        )

    def _guard(self, req: Request) -> tuple[Store | None, Response | None, dict[str, str]]:
        """User-Agent, Authentication, then the bucket. Returns (store, error response, rate headers)."""
        if not req.header("user-agent"):
            return (
                None,
                Response.json(
                    {"code": 400, "message": "Bad Request", "description": "User-Agent header is required"}, 400
                ),
                {},
            )
        store = self.stores.get(req.match["store"])
        auth = req.header("authentication") or ""
        if store is None or not store.installed or not store.token or auth != f"bearer {store.token}":
            return (
                None,
                Response.json({"code": 401, "message": "Unauthorized", "description": "Invalid access token"}, 401),
                {},
            )
        with self.lock:
            now = time.monotonic()
            store.level = max(0.0, store.level - (now - store.leaked_at) * self.drain)
            store.leaked_at = now
            full = store.level + 1 > self.bucket_size
            if not full:
                store.level += 1
            self.api_calls += 1
            if full:
                self.count_429 += 1
            headers = {
                "x-rate-limit-limit": str(self.bucket_size),
                "x-rate-limit-remaining": str(max(0, int(self.bucket_size - store.level))),
                "x-rate-limit-reset": str(int(store.level / self.drain * 1000)),
            }
        if full:
            return None, Response.json({"code": 429, "message": "Too Many Requests"}, 429, headers), headers
        return store, None, headers

    def store_info(self, req: Request) -> Response:
        store, error, headers = self._guard(req)
        if error:
            return error
        return Response.json(
            {"id": int(store.store_id), "name": {"es": store.name}, "email": f"owner@{store.store_id}.example"},
            headers=headers,
        )

    def get_record(self, req: Request) -> Response:
        store, error, headers = self._guard(req)
        if error:
            return error
        with self.lock:
            rec = next((r for r in store.data[req.match["resource"]] if str(r["id"]) == req.match["id"]), None)
        if rec is None:
            return Response.json({"code": 404, "message": "Not Found"}, 404, headers)
        return Response.json(rec, headers=headers)

    def list_records(self, req: Request) -> Response:
        store, error, headers = self._guard(req)
        if error:
            return error
        try:
            page = int(req.arg("page", "1"))
            per_page = int(req.arg("per_page", "30"))
            low = _parse(req.arg("updated_at_min")) if req.arg("updated_at_min") else None
            high = _parse(req.arg("updated_at_max")) if req.arg("updated_at_max") else None
        except ValueError as exc:
            return Response.json(
                {"code": 422, "message": "Unprocessable Entity", "description": str(exc)}, 422, headers
            )
        if per_page > 200 or per_page < 1 or page < 1:
            return Response.json(
                {"code": 422, "message": "Unprocessable Entity", "description": "per_page must be 1..200"}, 422, headers
            )
        with self.lock:
            rows = [
                dict(r)
                for r in store.data[req.match["resource"]]
                if (low is None or _parse(r["updated_at"]) >= low) and (high is None or _parse(r["updated_at"]) <= high)
            ]
        rows.sort(key=lambda r: r["id"])
        total = len(rows)
        reachable = min(total, self.result_cap)
        last = max(1, -(-reachable // per_page))
        start = (page - 1) * per_page
        if start >= reachable and page > 1:
            return Response.json(
                {"code": 404, "message": "Not Found", "description": f"Last page is {last}"}, 404, headers
            )
        chunk = rows[start : min(start + per_page, reachable)]
        base = f"http://{req.header('host', '127.0.0.1')}{req.path}"
        params = {k: v[0] for k, v in req.query.items()}

        def link(p: int, rel: str) -> str:
            return f'<{base}?{urlencode({**params, "page": p})}>; rel="{rel}"'

        links = [link(1, "first"), link(last, "last")]
        if page < last:
            links.append(link(page + 1, "next"))
        if page > 1:
            links.append(link(page - 1, "prev"))
        return Response.json(chunk, headers={**headers, "x-total-count": str(total), "Link": ", ".join(links)})
