"""Outbound HTTP with the rules of DESIGN.md §13, enforced where the socket is opened.

- only http(s) URLs, never redirects (callers pass allow_redirects=False; see Client.request);
- the host is resolved here and every address is checked *before* connecting, and we connect to the
  address we checked (no second DNS lookup, so DNS rebinding cannot swap it);
- private, loopback, link-local, multicast, reserved and unspecified addresses are refused unless the
  OUTBOUND_ALLOW_LOOPBACK / OUTBOUND_ALLOW_PRIVATE settings allow them (sandbox, tests, demo);
- the environment's proxy settings are ignored (a proxy would connect on our behalf, unchecked).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from urllib.parse import urlencode, urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity, to_native_string
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError


class BlockedDestination(OSError):
    """The URL or the address it resolves to is not allowed for outbound requests."""


# Always refused, whatever the allowances: cloud metadata services and "this network" (0.0.0.0/8 reaches
# the local host on Linux). 169.254.0.0/16 is link-local and refused anyway.
_ALWAYS_REFUSED = [
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata (inside carrier-grade NAT space)
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
]
# IPv6 ranges that carry an IPv4 address inside (RFC 6052 NAT64, RFC 8215 local NAT64, RFC 3056 6to4,
# RFC 4380 Teredo): a tunnel or translator may deliver them to any IPv4 address, internal ones included.
# No upstream we talk to is addressed that way, so they are refused outright.
_TUNNELS = {
    ipaddress.ip_network("64:ff9b::/96"): "NAT64",
    ipaddress.ip_network("64:ff9b:1::/48"): "local-use NAT64",
    ipaddress.ip_network("2002::/16"): "6to4",
    ipaddress.ip_network("2001::/32"): "Teredo",
}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# Hosts made only of digits, dots and hex markers: what inet_aton accepts ("2130706433", "0x7f.1", "0177.0.0.1").
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)


def refusal_reason(ip: str) -> str | None:
    """The one address rule (DESIGN.md §13): why ``ip`` may not be reached, or None if it may."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return f"{ip!r} is not an IP address"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return refusal_reason(str(addr.ipv4_mapped))
        for network, name in _TUNNELS.items():
            if addr in network:
                return f"{addr} is a {name} address (it tunnels to an IPv4 address that cannot be checked)"
        if addr in ipaddress.ip_network("::/96") and not addr.is_loopback and not addr.is_unspecified:
            return f"{addr} is an IPv4-compatible IPv6 address"
    if any(addr in network for network in _ALWAYS_REFUSED):
        return f"{addr} is a metadata, link-local or 'this network' address"
    if addr.is_loopback:
        return None if settings.OUTBOUND_ALLOW_LOOPBACK else f"{addr} is a loopback address"
    if addr.is_link_local or addr.is_multicast or addr.is_unspecified or addr.is_reserved:
        return f"{addr} is a link-local, multicast, unspecified or reserved address"
    if addr.version == 4 and addr in _CGNAT:
        return None if settings.OUTBOUND_ALLOW_PRIVATE else f"{addr} is a carrier-grade NAT (shared) address"
    if addr.is_private or not addr.is_global:
        return None if settings.OUTBOUND_ALLOW_PRIVATE else f"{addr} is a private or non-global address"
    return None


def address_allowed(ip: str) -> bool:
    return refusal_reason(ip) is None


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BlockedDestination(f"only http(s) URLs are allowed, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise BlockedDestination("the URL has no host")
    check_host_form(parts.hostname)


def check_host_form(host: str) -> None:
    """Refuse host spellings that resolvers read as IPv4 but that are not dotted decimal (integer, hex,
    octal, short forms): they exist to slip an address past a check that expects four decimal parts."""
    host = host.rstrip(".") if host.endswith(".") and _NUMERIC_HOST.match(host) else host
    if _NUMERIC_HOST.match(host):
        try:
            canonical = str(ipaddress.IPv4Address(host))
        except ValueError:
            canonical = None
        if canonical != host:
            raise BlockedDestination(
                f"the host {host!r} is a numeric form (integer, hex, octal or shortened) of an IPv4 address; "
                "write the address in dotted decimal"
            )


def validate_outbound_url(url: str, *, resolve: bool = True) -> None:
    """The address rule at save time (admin form, API serializers, model validation): the URL's scheme and
    host form, the literal address, or every address its host name resolves to now. Raises
    BlockedDestination with a message for the operator. Request time checks again (resolve_allowed),
    because DNS can change after the save."""
    if not url:
        return
    check_url(url)
    host = urlsplit(url).hostname or ""
    try:
        literal = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is not None:
        reason = refusal_reason(host)
        if reason:
            raise BlockedDestination(f"outbound requests may not reach {reason}")
        return
    if not resolve:
        return
    port = urlsplit(url).port or (443 if url.lower().startswith("https") else 80)
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise BlockedDestination(f"cannot resolve {host!r}: {exc}") from None
    for info in infos:
        reason = refusal_reason(info[4][0])
        if reason:
            raise BlockedDestination(f"{host!r} resolves to {info[4][0]}, and outbound requests may not reach {reason}")


def resolve_allowed(host: str, port: int) -> list[tuple]:
    """getaddrinfo, keeping only allowed addresses; raise if none is allowed."""
    check_host_form(host)
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


class GuardedSession(requests.Session):
    """A Session whose ``request`` prepares a plain GET itself: what ``Session.prepare_request`` would build, in
    a fifth of the time. requests merges the session's settings into every request through generic helpers
    (runtime Protocol checks, cookie-jar copies, the URL parsed and requoted whole): ~0.15 ms of CPU a page,
    ~0.16 s a first sync of 100,000 WooCommerce customers on the fetch thread every sync waits for (issue 20).

    Only the case whose result is plain is taken (``plain_get``): GET, no body, no cookies, no session-level
    auth/params/proxies/hooks, no trust in the environment, auth None or a (user, password) pair, headers a
    dict, an http(s) URL without "%", "#" or "@" (so its requoting cannot reach the query, and it holds no
    credentials), parameters a dict of str to str/int/float/None. Anything else goes through
    ``requests.Session.request`` unchanged. Sending is still ``Session.send`` (the adapter, hooks, cookies a
    response sets; once the jar holds one, requests prepares every request again).
    tests/connectors/test_guarded_session.py compares the two preparations field by field and on the wire."""

    def request(self, method, url, params=None, data=None, headers=None, cookies=None, files=None, auth=None,
                timeout=None, allow_redirects=True, proxies=None, hooks=None, stream=None, verify=None, cert=None,
                json=None):  # fmt: skip
        plain = None
        if not (data or files or cookies or proxies or hooks) and json is None:
            plain = self.plain_get(method, url, params, headers, auth)
        if plain is None:
            return super().request(
                method, url, params=params, data=data, headers=headers, cookies=cookies, files=files, auth=auth,
                timeout=timeout, allow_redirects=allow_redirects, proxies=proxies, hooks=hooks, stream=stream,
                verify=verify, cert=cert, json=json,
            )  # fmt: skip
        # What merge_environment_settings gives when the environment is not trusted.
        return self.send(
            plain,
            timeout=timeout,
            allow_redirects=allow_redirects,
            proxies={},
            stream=self.stream if stream is None else stream,
            verify=self.verify if verify is None else verify,
            cert=self.cert if cert is None else cert,
        )

    def plain_get(self, method, url, params, headers, auth) -> PreparedRequest | None:
        """``self.prepare_request(Request(method, url, params=params, headers=headers, auth=auth))`` for the
        plain case described on the class, or None where the case is not plain."""
        if (
            method != "GET"
            or url.__class__ is not str
            or self.trust_env
            or self.auth is not None
            or self.params
            or self.proxies
            or self.hooks.get("response") != []
            or len(self.cookies)
        ):
            return None
        if not (auth is None or (auth.__class__ is tuple and len(auth) == 2)):
            return None  # an auth object may register hooks (digest) or rewrite the request: requests' path
        if not (headers is None or headers.__class__ is dict):
            return None
        base = _prepared_url(url)
        if base is None:
            return None
        query = _plain_query(params)
        if query is None:
            return None
        merged = CaseInsensitiveDict(self.headers)
        if headers:
            merged.update(headers)
        prepared = PreparedRequest()
        prepared.method = method
        prepared.url = f"{base}{'&' if '?' in base else '?'}{query}" if query else base
        prepared.headers = CaseInsensitiveDict()
        for header in merged.items():
            if header[1] is not None:  # merge_setting drops a header set to None
                check_header_validity(header)
                prepared.headers[to_native_string(header[0])] = header[1]
        prepared._cookies = RequestsCookieJar()
        prepared.body = None
        if auth:
            prepared.prepare_auth(auth, base)  # HTTP Basic: the Authorization header, as requests adds it
        return prepared  # hooks: PreparedRequest's defaults, as merge_hooks leaves them for this session


@functools.lru_cache(maxsize=256)
def _prepared_url(url: str) -> str | None:
    """requests' preparation of ``url`` alone (IDNA host, requoting), for URLs where adding a query after it
    equals preparing the two together: no "%" (a bad escape makes requests requote the whole URL another way),
    no "#" (the query goes before a fragment), no "@" (credentials in the URL are requests' slow case), and
    an http(s) URL."""
    if "%" in url or "#" in url or "@" in url or url.lstrip()[:4].lower() != "http":
        return None  # (requests leaves a URL of another scheme as it is, without the parameters)
    prepared = PreparedRequest()
    try:
        prepared.prepare_url(url, None)
    except Exception:  # requests raises it again on its own path, with its own message
        return None
    return prepared.url


def _plain_query(params) -> str | None:
    """The query requests makes of ``params`` (``RequestEncodingMixin._encode_params``), for a dict of str keys
    to str, int, float or None values (None dropped, as requests drops it); None for any other shape. Its
    output holds only characters requests' requoting leaves alone."""
    if not params:
        return "" if params is None or params.__class__ is dict else None
    if params.__class__ is not dict:
        return None
    pairs = []
    for key, value in params.items():
        if key.__class__ is not str:
            return None
        kind = value.__class__
        if kind is str:
            pairs.append((key, value))
        elif kind is int or kind is float:
            pairs.append((key, str(value)))
        elif value is not None:
            return None
    return urlencode(pairs)


def guarded_session(pool_maxsize: int = 10) -> requests.Session:
    session = GuardedSession()
    session.trust_env = False  # no proxies / netrc from the environment
    session.max_redirects = 0
    adapter = GuardedAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def outbound_url_validator(value: str) -> None:
    """Django validator form of validate_outbound_url (model clean, forms, DRF serializers)."""
    from django.core.exceptions import ValidationError

    try:
        validate_outbound_url(value)
    except BlockedDestination as exc:
        raise ValidationError(f"This address is not allowed: {exc}.", code="blocked_destination") from None
