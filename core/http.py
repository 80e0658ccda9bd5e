"""Outbound HTTP with the rules of DESIGN.md §13, enforced where the socket is opened.

- only http(s) URLs, never redirects (callers pass allow_redirects=False; see Client.request);
- the host is resolved here and every address is checked *before* connecting, and we connect to the
  address we checked (no second DNS lookup, so DNS rebinding cannot swap it);
- private, loopback, link-local, multicast, reserved and unspecified addresses are refused unless the
  OUTBOUND_ALLOW_LOOPBACK / OUTBOUND_ALLOW_PRIVATE settings allow them (sandbox, tests, demo);
- the environment's proxy settings are ignored (a proxy would connect on our behalf, unchecked).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError


class BlockedDestination(OSError):
    """The URL or the address it resolves to is not allowed for outbound requests."""


def address_allowed(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if addr.is_loopback:
        return bool(settings.OUTBOUND_ALLOW_LOOPBACK)
    if addr.is_link_local or addr.is_multicast or addr.is_unspecified or addr.is_reserved:
        return False
    if addr.is_private or not addr.is_global:
        return bool(settings.OUTBOUND_ALLOW_PRIVATE)
    return True


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BlockedDestination(f"only http(s) URLs are allowed, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise BlockedDestination("the URL has no host")


def resolve_allowed(host: str, port: int) -> list[tuple]:
    """getaddrinfo, keeping only allowed addresses; raise if none is allowed."""
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BlockedDestination(f"cannot resolve {host!r}: {exc}") from None
    allowed = [info for info in infos if address_allowed(info[4][0])]
    if not allowed:
        raise BlockedDestination(f"{host!r} resolves only to addresses that outbound requests may not reach")
    return allowed


def _guarded_create_connection(host: str, port: int, timeout, source_address, socket_options) -> socket.socket:
    last_error: OSError | None = None
    for family, socktype, proto, _canon, sockaddr in resolve_allowed(host, port):
        sock = None
        try:
            sock = socket.socket(family, socktype, proto)
            for opt in socket_options or ():
                sock.setsockopt(*opt)
            if isinstance(timeout, (int, float)):
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            last_error = exc
            if sock is not None:
                sock.close()
    raise last_error or OSError(f"could not connect to {host}:{port}")


class _GuardMixin:
    def _new_conn(self):  # type: ignore[override]
        try:
            return _guarded_create_connection(
                self._dns_host, self.port, self.timeout, self.source_address, self.socket_options
            )
        except BlockedDestination:
            raise
        except TimeoutError as exc:
            from urllib3.exceptions import ConnectTimeoutError

            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc


class GuardedHTTPConnection(_GuardMixin, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardMixin, HTTPSConnection):
    pass


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPConnectionPool,
            "https": GuardedHTTPSConnectionPool,
        }


def guarded_session(pool_maxsize: int = 10) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies / netrc from the environment
    session.max_redirects = 0
    adapter = GuardedAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
