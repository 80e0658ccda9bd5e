"""The base Client against a loopback sandbox: retries, 429 waits, auth, JSON checks, timeouts."""

from __future__ import annotations

import types

import pytest

from connectors.base import AuthError, BadPage, Client, PermanentError, RateLimited, TransientError, parse_retry_after
from connectors.sandbox.server import Response, SandboxApp, serve


class Script:
    """A sandbox route that answers from a list of canned responses, then repeats the last."""

    def __init__(self, *responses: Response) -> None:
        self.responses = list(responses)
        self.calls = 0

    def __call__(self, req) -> Response:
        self.calls += 1
        return self.responses[min(self.calls, len(self.responses)) - 1]


@pytest.fixture
def sandbox():
    app = SandboxApp()
    with serve(app) as base_url:
        yield app, base_url


def make_client(base_url: str, cls=Client) -> Client:
    return cls(types.SimpleNamespace(base_url=base_url))


def route(app, script: Script, path: str = "/items") -> Script:
    app.route("GET", path)(script)
    return script


def test_transient_errors_back_off_then_succeed(sandbox, fake_clock, settings):
    settings.SYNC_RETRY_BASE_SECONDS = 1.0
    app, url = sandbox
    script = route(
        app,
        Script(
            Response.json({"e": 1}, 503),
            Response(200, b"<html>oops</html>", {"Content-Type": "text/html"}),
            Response.json([1, 2]),
        ),
    )
    assert make_client(url).request("GET", "/items").json() == [1, 2]
    assert script.calls == 3
    assert len(fake_clock.sleeps) == 2 and all(0 <= s <= 2 for s in fake_clock.sleeps)  # expo with full jitter


def test_transient_errors_give_up_after_max_tries(sandbox, fake_clock, settings):
    settings.SYNC_HTTP_MAX_TRIES = 3
    app, url = sandbox
    script = route(app, Script(Response.json({"message": "down"}, 502)))
    with pytest.raises(TransientError, match="HTTP 502"):
        make_client(url).request("GET", "/items")
    assert script.calls == 3


def test_one_client_reads_its_tries_and_wait_factor_at_each_request(sandbox, fake_clock, settings):
    """The retry policy is decorated once per client (Client._retrying); what it reads still changes per request."""
    settings.SYNC_HTTP_MAX_TRIES = 3
    settings.SYNC_RETRY_BASE_SECONDS = 1.0
    app, url = sandbox
    script = route(app, Script(Response.json({"message": "down"}, 502)))
    client = make_client(url)
    with pytest.raises(TransientError):
        client.request("GET", "/items")
    assert script.calls == 3 and len(fake_clock.sleeps) == 2
    assert all(0 <= s <= 2 for s in fake_clock.sleeps)  # factor 1: full jitter of 1, then 2 seconds at most
    client.max_tries = 1  # as the Tiendanube health check sets it on its client
    with pytest.raises(TransientError):
        client.request("GET", "/items")
    assert script.calls == 4 and len(fake_clock.sleeps) == 2
    client.max_tries = 2
    settings.SYNC_RETRY_BASE_SECONDS = 0.0  # no wait between tries from now on
    with pytest.raises(TransientError):
        client.request("GET", "/items")
    assert script.calls == 6 and fake_clock.sleeps[2:] == [0]


@pytest.mark.parametrize("retry_after, expected", [("7", 7.0), ("Thu, 01 Jan 2026 00:00:30 GMT", 30.0)])
def test_429_waits_exactly_as_told(sandbox, fake_clock, retry_after, expected):
    app, url = sandbox
    route(app, Script(Response.json({}, 429, {"Retry-After": retry_after}), Response.json({"ok": True})))
    assert make_client(url).request("GET", "/items").json() == {"ok": True}
    assert fake_clock.sleeps == [expected]  # the fake clock starts at 2026-01-01T00:00:00Z


def test_429_forever_raises_rate_limited(sandbox, fake_clock, settings):
    settings.SYNC_HTTP_MAX_TRIES = 2
    app, url = sandbox
    route(app, Script(Response.json({}, 429, {"Retry-After": "1"})))
    with pytest.raises(RateLimited):
        make_client(url).request("GET", "/items")


def test_auth_errors_get_one_refresh(sandbox):
    app, url = sandbox
    script = route(app, Script(Response.json({"error": "invalid_token"}, 401), Response.json({"ok": 1})))

    class Refreshing(Client):
        refreshed = 0

        def on_auth_error(self, error):
            self.refreshed += 1
            return True

    client = make_client(url, Refreshing)
    assert client.request("GET", "/items").json() == {"ok": 1} and client.refreshed == 1
    route(app, Script(Response.json({"error": "invalid_token"}, 403)), "/denied")
    with pytest.raises(AuthError, match="HTTP 403"):
        client.request("GET", "/denied")
    assert script.calls == 2


def test_permanent_4xx_is_not_retried(sandbox):
    app, url = sandbox
    script = route(app, Script(Response.json({"code": "bad_param", "message": "per_page too big"}, 400)))
    with pytest.raises(PermanentError, match="bad_param: per_page too big"):
        make_client(url).request("GET", "/items")
    assert script.calls == 1


def test_malformed_json_is_a_bad_page(sandbox):
    app, url = sandbox
    route(app, Script(Response(200, b"{not json", {"Content-Type": "application/json"})))
    with pytest.raises(BadPage):
        make_client(url).get_json("/items")


def test_every_call_has_a_timeout(sandbox, monkeypatch):
    app, url = sandbox
    route(app, Script(Response.json({})))
    client = make_client(url)
    seen = {}
    original = client.session.request

    def spy(method, u, **kwargs):
        seen.update(kwargs)
        return original(method, u, **kwargs)

    monkeypatch.setattr(client.session, "request", spy)
    client.request("GET", "/items")
    assert seen["timeout"] == client.timeout and all(t > 0 for t in seen["timeout"])
    assert seen["allow_redirects"] is False


def test_parse_retry_after():
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("-5") == 0.0
