from __future__ import annotations

import pytest

from connectors.sandbox.server import serve
from connectors.woocommerce.sandbox import WooSandbox

WEBHOOK_SECRET = "whsec-test-0123456789"


@pytest.fixture
def make_sandbox():
    """Start sandboxes over real HTTP on loopback; stopped after the test."""
    running = []

    def make(**kw) -> tuple[WooSandbox, str]:
        sandbox = WooSandbox(**kw)
        ctx = serve(sandbox.app)
        base = ctx.__enter__()
        running.append(ctx)
        return sandbox, base

    yield make
    for ctx in running:
        ctx.__exit__(None, None, None)


@pytest.fixture
def woo(org, make_connection, make_sandbox):
    """A small sandbox store and a connection to it: (sandbox, connection)."""

    def build(size: int = 30, **kw):
        sandbox, base = make_sandbox(size=size, **kw)
        conn = make_connection(
            org,
            kind="woocommerce",
            base_url=base,
            credentials={
                "consumer_key": sandbox.consumer_key,
                "consumer_secret": sandbox.consumer_secret,
                "webhook_secret": WEBHOOK_SECRET,
            },
        )
        return sandbox, conn

    return build


@pytest.fixture(params=["ahead", "inline"])
def read_ahead(request, monkeypatch):
    """Both ways a scan fetches its pages (core.paging.ReadAhead): in parallel from the start, and inline (a
    threshold no loopback page comes near, so timing cannot pick the way)."""
    from connectors.woocommerce import conf

    monkeypatch.setattr(conf, "READ_AHEAD_AFTER_MS", 0.0 if request.param == "ahead" else 10_000.0)
    return request.param
