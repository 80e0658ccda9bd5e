"""The outbound guard (DESIGN.md §13): refusal happens before any connect, redirects are not followed,
only http(s) is allowed."""

from __future__ import annotations

import socket
import types

import pytest

from connectors.base import Client, PermanentError
from connectors.sandbox.server import Response, SandboxApp, serve
from core.http import address_allowed


class ConnectReached(AssertionError):
    pass


@pytest.fixture
def no_connect(monkeypatch):
    """Any connect fails the test: refusal must happen before a socket is opened."""
    attempts: list = []

    def forbidden(self, address):
        attempts.append(address)
        raise ConnectReached(f"connect reached with {address!r}")

    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(socket.socket, "connect_ex", forbidden)
    return attempts


def resolves_to(monkeypatch, *ips: str) -> list:
    """Stub DNS: the host resolves to ``ips``; returns the list of names looked up."""
    looked_up: list = []

    def fake_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        looked_up.append(host)
        out = []
        for ip in ips:
            fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
            addr = (ip, port, 0, 0) if fam == socket.AF_INET6 else (ip, port)
            out.append((fam, socket.SOCK_STREAM, 6, "", addr))
        return out

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    return looked_up


def client(base_url: str) -> Client:
    return Client(types.SimpleNamespace(base_url=base_url))


@pytest.mark.parametrize(
    "ip", ["10.0.0.5", "169.254.169.254", "::1", "127.0.0.1", "192.168.1.10", "fe80::1", "0.0.0.0"]
)
def test_refused_before_connect(ip, monkeypatch, no_connect, settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    settings.OUTBOUND_ALLOW_PRIVATE = False
    looked_up = resolves_to(monkeypatch, ip)
    with pytest.raises(PermanentError, match="outbound request refused"):
        client("http://shop.example.com").request("GET", "/wp-json/wc/v3/customers")
    assert looked_up == ["shop.example.com"]
    assert no_connect == []


def test_link_local_metadata_is_refused_even_when_private_is_allowed(monkeypatch, no_connect, settings):
    settings.OUTBOUND_ALLOW_PRIVATE = True
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    resolves_to(monkeypatch, "169.254.169.254")
    with pytest.raises(PermanentError):
        client("http://metadata.example.com").request("GET", "/latest/meta-data/")
    assert no_connect == []


def test_only_allowed_addresses_are_dialled(monkeypatch, no_connect, settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    settings.OUTBOUND_ALLOW_PRIVATE = False
    resolves_to(monkeypatch, "10.0.0.5", "93.184.216.34")
    with pytest.raises(ConnectReached, match="93.184.216.34"):
        client("http://mixed.example.com").session.get("http://mixed.example.com/x", timeout=1)
    assert [a[0] for a in no_connect] == ["93.184.216.34"]  # never the private one


def test_ipv4_mapped_ipv6_cannot_sneak_past(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    settings.OUTBOUND_ALLOW_PRIVATE = False
    assert not address_allowed("::ffff:10.0.0.5")
    assert not address_allowed("::ffff:127.0.0.1")
    assert address_allowed("93.184.216.34")


@pytest.mark.parametrize("url", ["ftp://files.example.com/x", "file:///etc/passwd", "gopher://x.example.com/"])
def test_non_http_schemes_are_refused(url, monkeypatch, no_connect):
    looked_up = resolves_to(monkeypatch, "93.184.216.34")
    with pytest.raises(PermanentError, match="outbound request refused"):
        client("http://shop.example.com").request("GET", url)  # an absolute URL from a page's "next" link
    with pytest.raises(PermanentError, match="outbound request refused"):
        client(url).request("GET", "/customers")  # a connection whose base URL is not http(s)
    assert looked_up == [] and no_connect == []


def test_redirects_are_not_followed():
    app = SandboxApp()

    @app.route("GET", r"/start")
    def start(req):
        return Response(302, b"", {"Location": "/secret-target"})

    @app.route("GET", r"/secret-target")
    def target(req):
        return Response.json({"followed": True})

    with serve(app) as base_url:
        with pytest.raises(PermanentError, match="redirect"):
            client(base_url).request("GET", "/start")
    assert [r.path for r in app.requests_seen] == ["/start"]


def test_the_environment_proxy_is_ignored(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://10.9.9.9:3128")
    app = SandboxApp()

    @app.route("GET", r"/ping")
    def ping(req):
        return Response.json({"ok": True})

    with serve(app) as base_url:
        response = client(base_url).request("GET", "/ping")
    assert response.json() == {"ok": True}
