"""A local MDM for the demo, tests and benchmarks: paged ineligible items behind an X-API-Key check,
with fault knobs (error status for N calls, hang, malformed body) as attributes or ``POST /_sandbox/faults``."""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.sandbox.server import Request, Response, SandboxApp, SandboxLifecycle

REASONS = ["recalled", "discontinued", "restricted-market", "compliance-hold"]


def make_items(n: int, *, prefix: str = "SKU") -> list[dict]:
    return [
        {
            "sku": f"{prefix}-{i:05d}",
            "reason": REASONS[i % len(REASONS)],
            "market": ["AR", "BR", "MX"][i % 3],
            "updated_at": f"2026-01-{1 + i % 28:02d}T12:00:00Z",
        }
        for i in range(1, n + 1)
    ]


@dataclass
class Faults:
    error_status: int | None = None
    error_times: int | None = None  # None = until cleared
    hang_seconds: float = 0.0
    malformed: bool = False


@dataclass
class MdmSandbox(SandboxLifecycle):
    api_key: str = "sandbox-mdm-api-key"
    items: list[dict] = field(default_factory=lambda: make_items(25))
    faults: Faults = field(default_factory=Faults)
    # An MDM without paging answers a bare JSON array of every item (the resource accepts both shapes).
    bare_array: bool = False

    def __post_init__(self) -> None:
        self.app = SandboxApp()
        self.calls = 0
        self._init_lifecycle()
        self.app.route("GET", r"/api/v1/ineligible-items")(self._items)
        self.app.route("POST", r"/_sandbox/faults")(self._set_faults)

    def _items(self, req: Request) -> Response:
        with self.app.lock:
            self.calls += 1
            f = self.faults
        if f.hang_seconds:
            self._released.wait(f.hang_seconds)
        if self.api_key and req.header("x-api-key") != self.api_key:
            return Response.json({"error": "unauthorized", "message": "missing or invalid X-API-Key"}, 401)
        with self.app.lock:
            if f.error_status and (f.error_times is None or f.error_times > 0):
                if f.error_times is not None:
                    f.error_times -= 1
                return Response.json({"error": "mdm_error", "message": "MDM backend unavailable"}, f.error_status)
            if f.malformed:
                return Response(200, b"<html>maintenance</html>", {"Content-Type": "text/html"})
            items = [dict(i) for i in self.items]
        try:
            page = max(1, int(req.arg("page", "1")))
            size = max(1, min(1000, int(req.arg("page_size", "100"))))
        except ValueError:
            return Response.json({"error": "bad_request", "message": "page and page_size must be integers"}, 400)
        if self.bare_array:
            return Response.json(items)
        total_pages = max(1, -(-len(items) // size))
        chunk = items[(page - 1) * size : page * size]
        return Response.json(
            {"items": chunk, "page": page, "page_size": size, "total_pages": total_pages, "total": len(items)}
        )

    def _set_faults(self, req: Request) -> Response:
        body = req.json() or {}
        with self.app.lock:
            self.faults = Faults(**{k: v for k, v in body.items() if k in Faults.__dataclass_fields__})
        return Response.json({"faults": self.faults.__dict__})
