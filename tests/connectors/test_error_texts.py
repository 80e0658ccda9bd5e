"""Issue 18: a network or HTTP error names host, port and kind (refused, timeout, DNS, TLS, HTTP status), and
never a credential or a query string."""

from __future__ import annotations

import socket
import types

import pytest
import requests

from connectors.base import AuthError, Client, TransientError
from connectors.sandbox.server import Response, SandboxApp, serve


def _client(base_url: str) -> Client:
    client = Client(types.SimpleNamespace(base_url=base_url))
    client.kind = "woocommerce"
    return client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def test_refused_names_host_port_and_kind():
    port = _free_port()
    with pytest.raises(TransientError) as info:
        _client(f"http://127.0.0.1:{port}").send_once(
            "GET", "/wp-json/wc/v3/customers", params={"consumer_secret": "cs_live_123"}
        )
    assert str(info.value) == f"network error talking to woocommerce at 127.0.0.1:{port}: connection refused"


def test_dns_failure_is_named(monkeypatch):
    """The outbound guard resolves first (core.http), so a DNS failure is its refusal, naming the host."""
    from core.errors import PermanentError

    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    with pytest.raises(PermanentError) as info:
        _client("https://shop.invalid").send_once("GET", "/x")
    assert "cannot resolve 'shop.invalid'" in str(info.value)


def test_dns_kind_when_the_resolver_fails_at_connect():
    from connectors.base import _network_kind

    exc = requests.exceptions.ConnectionError(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert _network_kind(exc) == "DNS lookup failed"


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (requests.exceptions.SSLError("certificate verify failed"), "TLS handshake failed"),
        (requests.exceptions.ConnectTimeout("connect timed out"), "timed out"),
        (
            requests.exceptions.ConnectionError(ConnectionResetError(104, "Connection reset by peer")),
            "connection reset",
        ),
    ],
)
def test_tls_timeout_and_reset_are_named(monkeypatch, exc, kind):
    client = _client("https://shop.example:8443")

    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(client.session, "request", fail)
    monkeypatch.setattr("connectors.base.check_url", lambda url: None)  # no resolver call in this test
    with pytest.raises(TransientError) as info:
        client.send_once("GET", "/x")
    assert str(info.value) == f"network error talking to woocommerce at shop.example:8443: {kind}"


def test_http_status_names_host_port_and_no_query_string():
    app = SandboxApp()
    app.route("GET", "/wp-json/wc/v3/customers")(lambda req: Response.json({"message": "bad key"}, 401))
    with serve(app) as base_url:
        with pytest.raises(AuthError) as info:
            _client(base_url).send_once("GET", "/wp-json/wc/v3/customers", params={"consumer_key": "ck_secret_999"})
    text = str(info.value)
    host_port = base_url.split("://")[1].rstrip("/")
    assert text == f"HTTP 401 from GET /wp-json/wc/v3/customers at {host_port}: bad key"
    assert "ck_secret_999" not in text and "consumer_key" not in text
