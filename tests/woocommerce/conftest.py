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


@pytest.fixture(autouse=True)
def _inline_pages(monkeypatch):
    """Every WooCommerce test reads its pages inline (core.paging.ReadAhead) unless it asks otherwise: what the
    connector does against a fast upstream, pinned so that a loaded machine's timing cannot switch a test's
    way of fetching (read_ahead and tests/woocommerce/test_read_ahead.py choose theirs)."""
    from connectors.woocommerce import conf

    monkeypatch.setattr(conf, "READ_AHEAD_AFTER_MS", 10_000.0)


@pytest.fixture(params=["ahead", "inline", "switch"])
def read_ahead(request, monkeypatch):
    """Each way a scan fetches its pages (core.paging.ReadAhead): in parallel from the start; inline (a
    threshold no loopback page comes near); and inline for two pages, then in parallel (the switch mid-scan,
    made deterministic)."""
    from connectors.woocommerce import conf
    from core import paging

    monkeypatch.setattr(conf, "READ_AHEAD_AFTER_MS", {"ahead": 0.0, "inline": 10_000.0, "switch": 20.0}[request.param])
    if request.param == "switch":

        def after_two(self, wall: float, cpu: float, slept: float = 0.0) -> None:
            self.seen = getattr(self, "seen", 0) + 1
            if self.seen >= 2:
                self.size = self.most

        monkeypatch.setattr(paging.ReadAhead, "inline", after_two)
    return request.param
