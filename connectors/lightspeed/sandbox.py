"""A local Lightspeed Retail X-Series 2.0 that speaks the real dialect (demo, tests, benchmarks).

- ``GET /api/2.0/{customers,products,customer_groups}?after=&page_size=&deleted=true`` ->
  ``{"data": [...], "version": {"min", "max"}}`` in ascending version order, empty ``data`` at the end,
  deleted objects (non-null ``deleted_at``) only with ``deleted=true``. ``version`` is one global counter
  that only grows, starting high (real versions are large) and stepping unevenly per write.
- ``POST /api/1.0/token`` (form-encoded): ``authorization_code`` and ``refresh_token`` grants; refresh
  tokens rotate (the old one dies); unknown/revoked ones answer 400 ``{"error": "invalid_grant"}``.
- ``GET /connect``: the authorize page, which redirects straight back with ``code``, ``domain_prefix``
  and ``state`` (what the real one does after the retailer clicks "Allow").
- Bearer auth with access tokens that expire (``core.clock`` time, so tests drive expiry) or personal
  tokens; 401 ``{"error": "invalid_token"}`` otherwise.
- ``X-RateLimit-Limit`` / ``X-RateLimit-Remaining`` on every API answer; knobs for 429 (Retry-After as an
  RFC 1123 date, or seconds), 5xx, HTML where JSON is expected, and a cap on page size.
Data is deterministic (uuid5 ids, seeded values).
"""

from __future__ import annotations

import email.utils
import itertools
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode

from connectors.sandbox.server import Request, Response, SandboxApp
from core import clock

NAMESPACE = uuid.UUID("5f1b6a2e-9c4d-4e8a-b7c1-2d3e4f506172")
COLLECTIONS = ("customers", "products", "customer_groups")
FIRST_NAMES = ["Ana", "Bruno", "Carla", "Diego", "Elena", "Facundo", "Gabriela", "Hugo", "Ines", "Joaquin"]
LAST_NAMES = ["Alvarez", "Benitez", "Castro", "Dominguez", "Espinoza", "Fernandez", "Gomez", "Herrera"]
GROUP_NAMES = ["All Customers", "VIP", "Wholesale", "Staff", "Students", "Loyalty Gold"]


def _iso(ts) -> str:
    return ts.replace(microsecond=0).isoformat()


@dataclass
class Knobs:
    rate_limited: int = 0  # answer the next N API calls with 429
    retry_after: int = 7  # seconds the 429 asks for
    retry_after_as_date: bool = True  # Lightspeed sends an HTTP date; other hosts send seconds
    server_errors: int = 0  # answer the next N API calls with 503
    html_errors: int = 0  # answer the next N API calls with an HTML 200 (a proxy page)
    rate_limit: int = 350  # X-RateLimit-Limit (300 x 1 register + 50)
    rate_remaining: int | None = None  # force X-RateLimit-Remaining (None: count down from the limit)
    max_page_size: int = 200
    token_lifetime: int = 86400  # seconds (the docs disagree: 86400 vs 604800)
    fail_token_endpoint: int = 0  # answer the next N token calls with 503
    expire_after_calls: int | None = None  # the current access token dies after this many API calls (once)


@dataclass
class Grant:
    access_token: str
    refresh_token: str
    expires: int
    calls: int = 0


@dataclass
class LightspeedSandbox:
    domain_prefix: str = "demostore"
    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"
    customers: int = 40
    products: int = 25
    customer_groups: int = 4
    personal_tokens: set[str] = field(default_factory=lambda: {"sandbox-personal-token"})
    knobs: Knobs = field(default_factory=Knobs)
    version_start: int = 1_000_000_000  # real versions are large; a restarted sandbox may continue higher

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self._version = self.version_start  # one global counter, shared by every collection
        self._steps = itertools.cycle([1, 3, 2, 7, 1, 5])  # uneven steps: versions are not +1 per resource
        self.store: dict[str, dict[str, dict]] = {name: {} for name in COLLECTIONS}
        self.grants: dict[str, Grant] = {}  # access token -> grant
        self.refresh_tokens: dict[str, Grant] = {}  # live refresh token -> grant
        self.codes: dict[str, str] = {}  # authorization code -> redirect_uri
        self.token_calls: list[str] = []  # grant_type of every token call
        self.api_calls: list[str] = []  # "GET /api/2.0/customers?after=..." of every API call
        self._served = 0
        for i in range(1, self.customer_groups + 1):
            self._put("customer_groups", self._group(i))
        for i in range(1, self.customers + 1):
            self._put("customers", self._customer(i))
        for i in range(1, self.products + 1):
            self._put("products", self._product(i))

    # -- deterministic data ------------------------------------------------------------------------------
    @staticmethod
    def make_id(kind: str, i: int) -> str:
        return str(uuid.uuid5(NAMESPACE, f"{kind}-{i}"))

    def _now(self) -> str:
        return _iso(clock.now())

    def _group(self, i: int) -> dict:
        return {
            "id": self.make_id("customer_groups", i),
            "name": GROUP_NAMES[(i - 1) % len(GROUP_NAMES)] + ("" if i <= len(GROUP_NAMES) else f" {i}"),
            "group_id": f"G{i:03d}",
            "created_at": self._now(),
            "updated_at": self._now(),
            "deleted_at": None,
        }

    def _customer(self, i: int) -> dict:
        first, last = FIRST_NAMES[i % len(FIRST_NAMES)], LAST_NAMES[i % len(LAST_NAMES)]
        group = (
            self.make_id("customer_groups", (i % max(self.customer_groups, 1)) + 1) if self.customer_groups else None
        )
        return {
            "id": self.make_id("customers", i),
            "customer_code": f"C-{i:05d}",
            "first_name": first,
            "last_name": last,
            "email": f"{first.lower()}.{last.lower()}{i}@example.com",
            "phone": f"+54 11 5555 {i:04d}",
            "company_name": "",
            "customer_group_id": group,
            "loyalty_balance": f"{(i * 37) % 500}.{i % 100:02d}",
            "note": "",
            "created_at": self._now(),
            "updated_at": self._now(),
            "deleted_at": None,
        }

    def _product(self, i: int) -> dict:
        return {
            "id": self.make_id("products", i),
            "name": f"Product {i:03d}",
            "handle": f"product-{i:03d}",
            "sku": f"SKU-{i:05d}",
            "active": i % 7 != 0,
            "variant_parent_id": None,
            "price_including_tax": f"{10 + (i * 13) % 90}.{(i * 7) % 100:02d}",
            "price_excluding_tax": None,
            "supply_price": f"{5 + i % 20}.00",
            "created_at": self._now(),
            "updated_at": self._now(),
            "deleted_at": None,
        }

    def _put(self, collection: str, record: dict) -> dict:
        with self.lock:
            self._version += next(self._steps)
            record = {**record, "version": self._version}
            self.store[collection][record["id"]] = record
            return record

    # -- mutation helpers (tests, demo) ----------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self._version

    def update(self, collection: str, record_id: str, **fields) -> dict:
        with self.lock:
            current = self.store[collection][record_id]
            return self._put(collection, {**current, **fields, "updated_at": self._now()})

    def add(self, collection: str, **fields) -> dict:
        with self.lock:
            i = len(self.store[collection]) + 1
            base = {"customers": self._customer, "products": self._product, "customer_groups": self._group}[collection](
                i
            )
            return self._put(collection, {**base, **fields})

    def delete(self, collection: str, record_id: str) -> dict:
        return self.update(collection, record_id, deleted_at=self._now())

    def live(self, collection: str) -> list[dict]:
        with self.lock:
            return [r for r in self.store[collection].values() if r["deleted_at"] is None]

    def issue_personal_token(self) -> str:
        token = "lsxs_pt_" + secrets.token_hex(16)
        self.personal_tokens.add(token)
        return token

    def issue_code(self, redirect_uri: str) -> str:
        code = "code_" + secrets.token_hex(12)
        with self.lock:
            self.codes[code] = redirect_uri
        return code

    def grant(self) -> Grant:
        """Mint a token pair directly (tests that start already connected)."""
        with self.lock:
            return self._mint()

    def expire_access_tokens(self) -> None:
        with self.lock:
            for g in self.grants.values():
                g.expires = 0

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.refresh_tokens.clear()

    def refresh_calls(self) -> int:
        return self.token_calls.count("refresh_token")

    # -- HTTP --------------------------------------------------------------------------------------------------
    def app(self) -> SandboxApp:
        app = SandboxApp()
        app.route("POST", r"/api/1\.0/token")(self._token)
        app.route("GET", r"/connect")(self._authorize)
        app.route("GET", r"/api/2\.0/(?P<collection>customers|products|customer_groups)")(self._list)
        app.route("GET", r"/api/2\.0/(?P<collection>customers|products|customer_groups)/(?P<id>[^/]+)")(self._get)
        return app

    def _mint(self) -> Grant:
        now = int(clock.now().timestamp())
        g = Grant(
            access_token="lsxs_at_" + secrets.token_hex(16),
            refresh_token="lsxs_rt_" + secrets.token_hex(16),
            expires=now + self.knobs.token_lifetime,
        )
        self.grants[g.access_token] = g
        self.refresh_tokens[g.refresh_token] = g
        return g

    def _token_response(self, g: Grant) -> Response:
        now = int(clock.now().timestamp())
        return Response.json(
            {
                "access_token": g.access_token,
                "token_type": "Bearer",
                "expires": g.expires,
                "expires_in": g.expires - now,
                "refresh_token": g.refresh_token,
                "domain_prefix": self.domain_prefix,
                "scope": "customers:read products:read",
            }
        )

    def _token(self, req: Request) -> Response:
        if not (req.header("content-type") or "").startswith("application/x-www-form-urlencoded"):
            return Response.json({"error": "invalid_request", "message": "token requests are form-encoded"}, 400)
        form = req.form()
        grant_type = form.get("grant_type", "")
        with self.lock:
            self.token_calls.append(grant_type)
            if self.knobs.fail_token_endpoint > 0:
                self.knobs.fail_token_endpoint -= 1
                return Response.json({"error": "server_error", "message": "try again"}, 503)
            if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
                return Response.json({"error": "invalid_client", "error_description": "unknown client"}, 401)
            if grant_type == "authorization_code":
                redirect = self.codes.pop(form.get("code", ""), None)
                if redirect is None or redirect != form.get("redirect_uri"):
                    return Response.json({"error": "invalid_grant", "error_description": "unknown or used code"}, 400)
                return self._token_response(self._mint())
            if grant_type == "refresh_token":
                old = self.refresh_tokens.pop(form.get("refresh_token", ""), None)  # rotation: the old one dies
                if old is None:
                    return Response.json({"error": "invalid_grant", "error_description": "refresh token revoked"}, 400)
                self.grants.pop(old.access_token, None)
                return self._token_response(self._mint())
        return Response.json({"error": "unsupported_grant_type", "error_description": grant_type}, 400)

    def _authorize(self, req: Request) -> Response:
        if req.arg("client_id") != self.client_id or req.arg("response_type") != "code":
            return Response(400, "unknown client", {"Content-Type": "text/plain"})
        redirect = req.arg("redirect_uri") or ""
        query = urlencode(
            {"code": self.issue_code(redirect), "domain_prefix": self.domain_prefix, "state": req.arg("state") or ""}
        )
        return Response(302, b"", {"Location": f"{redirect}?{query}"})

    def _auth_fault(self, req: Request) -> Response | None:
        header = req.header("authorization") or ""
        token = header[7:] if header.lower().startswith("bearer ") else ""
        with self.lock:
            if token in self.personal_tokens:
                return None
            g = self.grants.get(token)
            if g is not None and self.knobs.expire_after_calls is not None and g.calls >= self.knobs.expire_after_calls:
                g.expires = 0  # one shot: this token dies now (a mid-sync expiry); later tokens live normally
                self.knobs.expire_after_calls = None
            if g is None or g.expires <= clock.now().timestamp():
                return Response.json(
                    {"error": "invalid_token", "message": "The access token is missing, invalid or expired"}, 401
                )
            g.calls += 1
        return None

    def _limits(self) -> dict[str, str]:
        with self.lock:
            self._served += 1
            remaining = self.knobs.rate_remaining
            if remaining is None:
                remaining = max(self.knobs.rate_limit - self._served, 0)
        return {"X-RateLimit-Limit": str(self.knobs.rate_limit), "X-RateLimit-Remaining": str(remaining)}

    def _fault(self) -> Response | None:
        with self.lock:
            k = self.knobs
            if k.rate_limited > 0:
                k.rate_limited -= 1
                if k.retry_after_as_date:
                    when = clock.now().timestamp() + k.retry_after
                    after = email.utils.formatdate(when, usegmt=True)
                else:
                    after = str(k.retry_after)
                return Response.json(
                    {"error": "rate_limited", "message": "Too many requests"}, 429, {"Retry-After": after}
                )
            if k.server_errors > 0:
                k.server_errors -= 1
                return Response.json({"error": "service_unavailable", "message": "try again"}, 503)
            if k.html_errors > 0:
                k.html_errors -= 1
                return Response(200, b"<html><body>Gateway</body></html>", {"Content-Type": "text/html"})
        return None

    def _list(self, req: Request) -> Response:
        self.api_calls.append(f"GET {req.path}?{urlencode({k: v[0] for k, v in req.query.items()})}")
        denied = self._auth_fault(req) or self._fault()
        if denied is not None:
            return denied
        try:
            after = int(req.arg("after") or 0)
            size = int(req.arg("page_size") or 100)
        except ValueError:
            return Response.json({"error": "bad_request", "message": "after and page_size are integers"}, 400)
        size = max(1, min(size, self.knobs.max_page_size))
        with_deleted = (req.arg("deleted") or "").lower() == "true"
        with self.lock:
            rows = sorted(
                (
                    r
                    for r in self.store[req.match["collection"]].values()
                    if r["version"] > after and (with_deleted or r["deleted_at"] is None)
                ),
                key=lambda r: r["version"],
            )[:size]
            rows = [dict(r) for r in rows]
        version = {"min": rows[0]["version"], "max": rows[-1]["version"]} if rows else {"min": None, "max": None}
        return Response.json({"data": rows, "version": version}, headers=self._limits())

    def _get(self, req: Request) -> Response:
        denied = self._auth_fault(req) or self._fault()
        if denied is not None:
            return denied
        with self.lock:
            row = self.store[req.match["collection"]].get(req.match["id"])
        if row is None:
            return Response.json({"error": "not_found", "message": "Not found"}, 404, self._limits())
        return Response.json({"data": dict(row)}, headers=self._limits())
