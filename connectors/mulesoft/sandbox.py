"""A local MuleSoft loyalty API for the demo, tests and benchmarks.

Speaks our dialect (``GET {prefix}/loyalty/tiers`` -> ``{"data": [...]}``) behind the OAuth2 token
enforcement policy (Bearer; 401 otherwise) and the Rate Limiting policy (429 with ``X-Ratelimit-*``,
Reset in ms). Fault knobs are attributes (tests) or ``POST /_sandbox/faults`` (manual runs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.sandbox.server import Request, Response, SandboxApp, SandboxLifecycle

DEFAULT_TIERS = [
    {
        "id": "tier-bronze",
        "code": "BRONZE",
        "name": "Bronze",
        "rank": 1,
        "minPoints": 0,
        "benefits": ["birthday coupon"],
    },
    {
        "id": "tier-silver",
        "code": "SILVER",
        "name": "Silver",
        "rank": 2,
        "minPoints": 1000,
        "benefits": ["free shipping"],
    },
    {
        "id": "tier-gold",
        "code": "GOLD",
        "name": "Gold",
        "rank": 3,
        "minPoints": 5000,
        "benefits": ["free shipping", "early access"],
    },
]


@dataclass
class Faults:
    error_status: int | None = None  # answer every tiers call with this status...
    error_times: int | None = None  # ...this many times (None = until cleared)
    hang_seconds: float = 0.0  # hold the response this long (released early by stop())
    rate_limited_times: int = 0  # answer 429 this many times
    reset_ms: int = 30_000  # X-Ratelimit-Reset sent with 429s


@dataclass
class MuleSoftSandbox(SandboxLifecycle):
    token: str = "sandbox-mulesoft-token"
    tiers: list[dict] = field(default_factory=lambda: [dict(t) for t in DEFAULT_TIERS])
    faults: Faults = field(default_factory=Faults)
    limit: int = 100

    def __post_init__(self) -> None:
        self.app = SandboxApp()
        self.calls = 0
        self._init_lifecycle()
        self.app.route("GET", r"(?P<prefix>.*)/loyalty/tiers")(self._tiers)
        self.app.route("POST", r"/_sandbox/faults")(self._set_faults)

    @property
    def endpoint(self) -> str:
        """What to store in the mulesoft_loyalty_sync_endpoint setting."""
        return self.base_url + "/api/v1"

    # handlers ---------------------------------------------------------------------------------------
    def _headers(self, remaining: int, reset_ms: int) -> dict[str, str]:
        return {
            "X-Ratelimit-Limit": str(self.limit),
            "X-Ratelimit-Remaining": str(remaining),
            "X-Ratelimit-Reset": str(reset_ms),
        }

    def _tiers(self, req: Request) -> Response:
        with self.app.lock:
            self.calls += 1
            f = self.faults
        if f.hang_seconds:
            self._released.wait(f.hang_seconds)
        if self.token and req.header("authorization") != f"Bearer {self.token}":
            return Response.json({"error": "invalid_token", "message": "Invalid or missing bearer token"}, 401)
        with self.app.lock:
            if f.rate_limited_times > 0:
                f.rate_limited_times -= 1
                return Response.json(
                    {"error": "Too Many Requests", "message": "Quota exceeded"}, 429, self._headers(0, f.reset_ms)
                )
            if f.error_status and (f.error_times is None or f.error_times > 0):
                if f.error_times is not None:
                    f.error_times -= 1
                return Response.json(
                    {"error": "upstream_error", "message": "Loyalty backend unavailable"}, f.error_status
                )
            tiers = [dict(t) for t in self.tiers]
        return Response.json({"data": tiers, "total": len(tiers)}, 200, self._headers(self.limit - 1, 60_000))

    def _set_faults(self, req: Request) -> Response:
        body = req.json() or {}
        with self.app.lock:
            self.faults = Faults(**{k: v for k, v in body.items() if k in Faults.__dataclass_fields__})
        return Response.json({"faults": self.faults.__dict__})
