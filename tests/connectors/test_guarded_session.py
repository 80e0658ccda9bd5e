"""core.http.GuardedSession prepares a plain GET itself (issue 20). What it builds must be what requests builds:
the reference here is requests' own ``Session.prepare_request`` and what ``requests.Session`` puts on the
wire, never our own code."""

from __future__ import annotations

import contextlib
import random
import socket
import threading

import pytest
import requests

from core.http import GuardedSession, guarded_session

URLS = [
    "http://127.0.0.1:8080/wp-json/wc/v3/customers",
    "https://shop.example/wp-json/wc/v3/orders",
    "https://shop.example/api/2.0/products?after=5&page_size=200",  # a query already there
    "https://shop.example/a path/with spaces/é",  # requoted, percent-encoded UTF-8
    "https://bücher.example/wp-json/wc/v3/customers",  # IDNA host
    "https://shop.example:8443/x/",
    "https://shop.example/x?",  # an empty query: requests drops the "?"
    "  https://shop.example/leading-blank",
    "HTTPS://Shop.Example/Case",
]
VALUES = ["", "a", "a b", "a+b", "a&b=c", "?#/%", "é ü 中", "~-._", "1/2", "x" * 300, 0, -5, 10**20, 1.5, None]


def _cases(seed: int, count: int):
    rng = random.Random(seed)
    for _ in range(count):
        params = {}
        for _ in range(rng.randint(0, 6)):
            key = rng.choice(["offset", "per_page", "role", "consumer_key", "a b", "ä", "k&=", "order"])
            params[key] = rng.choice(VALUES)
        headers = rng.choice(
            [None, {}, {"Accept": "application/json"}, {"accept": "text/csv", "X-Extra": "1"}, {"User-Agent": None}]
        )
        auth = rng.choice([None, ("ck_key", "cs_secret"), ("ü", "p:w")])
        yield rng.choice(URLS), params, headers, auth


def _fields(prepared: requests.PreparedRequest) -> dict:
    return {
        "method": prepared.method,
        "url": prepared.url,
        "headers": list(prepared.headers.items()),
        "body": prepared.body,
        "hooks": prepared.hooks,
        "cookies": len(prepared._cookies),
    }


@pytest.mark.parametrize("seed", range(4))
def test_a_plain_get_is_prepared_as_requests_prepares_it(seed):
    session = guarded_session()
    taken = 0
    for url, params, headers, auth in _cases(seed, 150):
        ours = session.plain_get("GET", url, params, headers, auth)
        theirs = session.prepare_request(requests.Request("GET", url, params=params, headers=headers, auth=auth))
        if ours is None:
            continue
        taken += 1
        assert _fields(ours) == _fields(theirs), (url, params, headers, auth)
    assert taken > 100  # the plain path is the one compared, not the fallback


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.cookies.set("session", "1"),
        lambda s: setattr(s, "trust_env", True),
        lambda s: setattr(s, "auth", ("u", "p")),
        lambda s: s.params.update(x="1"),
        lambda s: s.proxies.update(https="http://proxy.example:3128"),
        lambda s: s.hooks["response"].append(lambda r, **kw: r),
    ],
    ids=["cookie", "trust_env", "session-auth", "session-params", "proxies", "hooks"],
)
def test_a_session_with_its_own_settings_is_prepared_by_requests(change):
    session = guarded_session()
    assert session.plain_get("GET", URLS[0], {"a": "1"}, None, None) is not None
    change(session)
    assert session.plain_get("GET", URLS[0], {"a": "1"}, None, None) is None


@pytest.mark.parametrize(
    "method, url, params",
    [
        ("POST", URLS[0], {}),
        ("get", URLS[0], {}),
        ("GET", "https://shop.example/a%2Fb", {}),  # an escape in the URL
        ("GET", "https://shop.example/a%zz", {"x": "1"}),  # a bad escape: requests requotes the whole URL
        ("GET", "https://shop.example/x#frag", {"x": "1"}),  # the query goes before the fragment
        ("GET", "https://user:pw@shop.example/x", {}),  # credentials in the URL
        ("GET", b"https://shop.example/x", {}),
        ("GET", URLS[0], {"ids": [1, 2]}),  # a list value (doseq)
        ("GET", URLS[0], {"flag": True}),  # a bool
        ("GET", URLS[0], {b"k": "v"}),  # a bytes key
        ("GET", URLS[0], [("a", "1")]),  # a list of pairs
        ("GET", URLS[0], "a=1"),  # a query string
        ("GET", "not a url", {}),  # requests raises its own error for it
        ("GET", "ftp://shop.example/x", {"x": "1"}),  # requests keeps another scheme's URL without the query
        ("GET", "localhost:8080/x", {"x": "1"}),
    ],
)
def test_anything_else_is_left_to_requests(method, url, params):
    assert guarded_session().plain_get(method, url, params, None, None) is None


@pytest.mark.parametrize(
    "headers, auth",
    [
        (None, requests.auth.HTTPDigestAuth("u", "p")),  # registers its own response hooks
        (None, requests.auth.HTTPBasicAuth("u", "p")),  # any auth object: requests' path
        (None, ("u", "p", "x")),
        ([("Accept", "application/json")], None),  # headers as pairs: requests raises for them
    ],
)
def test_auth_objects_and_header_pairs_are_left_to_requests(headers, auth):
    assert guarded_session().plain_get("GET", URLS[0], {"a": "1"}, headers, auth) is None


class _Sent(Exception):
    pass


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"timeout": 7, "stream": True, "allow_redirects": False},
        {"verify": False, "cert": "/tmp/client.pem", "timeout": (3, 9)},
        {"verify": "/etc/ssl/certs/ca.pem", "stream": False},
    ],
)
def test_a_plain_get_is_sent_with_the_settings_requests_sends_it_with(monkeypatch, options):
    """Session.send must get what Session.request gives it: TLS verification, client cert, timeout, streaming,
    redirects and proxies included (a fast path that dropped verify would send unverified TLS)."""
    sent: list = []

    def record(self, request, **kwargs):
        sent.append((_fields(request), kwargs))
        raise _Sent

    monkeypatch.setattr(requests.Session, "send", record)
    session = guarded_session()
    session.stream, session.verify = False, "/etc/ssl/session-ca.pem"  # settings of the session, merged
    for send in (session.request, lambda *a, **kw: requests.Session.request(session, *a, **kw)):
        with pytest.raises(_Sent):
            send("GET", URLS[1], params={"page": 2}, headers={"Accept": "application/json"}, auth=("ck", "cs"),
                 **options)  # fmt: skip
    assert len(sent) == 2
    assert sent[0][0] == sent[1][0]
    assert {k: v for k, v in sent[0][1].items()} == {k: dict(v) if k == "proxies" else v for k, v in sent[1][1].items()}


def test_a_bad_header_is_refused_as_requests_refuses_it():
    with pytest.raises(requests.exceptions.InvalidHeader):
        guarded_session().plain_get("GET", URLS[0], {}, {"X-Injected": "a\r\nHost: evil"}, None)


class _Recorder:
    """A loopback HTTP/1.1 server that records each request's bytes (line and headers) and answers 200 []."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.heads: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                while b"\r\n\r\n" in buffer:
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    self.heads.append(head)
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                        b"Set-Cookie: sid=abc; Path=/\r\n\r\n[]"
                    )

    def close(self) -> None:
        # shutdown wakes the accept() the serving thread blocks in (close alone does not, on Linux): no thread
        # left behind (tests/sync/test_fetch_process.py forks only while no other thread runs).
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=5)


def test_on_the_wire_a_plain_get_is_what_requests_sends(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    recorder = _Recorder()
    try:
        params = {"offset": 95, "per_page": 100, "search": "a b&c", "name": "é", "none": None}
        headers = {"Accept": "application/json"}
        plain = requests.Session()
        plain.trust_env = False
        for session in (plain, guarded_session()):
            first = session.request("GET", recorder.root + "/wp-json/wc/v3/customers", params=params,
                                    headers=headers, auth=("ck", "cs"), stream=True, allow_redirects=False)  # fmt: skip
            assert first.json() == []
            # The response set a cookie: requests sends it back, and so does ours (the jar is no longer empty).
            session.request("GET", recorder.root + "/next", params={"page": 2}, headers=headers, timeout=5)
            session.close()
        assert len(recorder.heads) == 4
        assert recorder.heads[2] == recorder.heads[0]
        assert recorder.heads[3] == recorder.heads[1]
        assert b"Cookie: sid=abc" in recorder.heads[3]
        assert recorder.heads[0].startswith(
            b"GET /wp-json/wc/v3/customers?offset=95&per_page=100&search=a+b%26c&name=%C3%A9 HTTP/1.1\r\n"
        )
    finally:
        recorder.close()


def test_the_guarded_session_takes_the_plain_path_for_a_client_page(settings, monkeypatch):
    """The client's page GET is the case the plain path exists for: it must not fall back."""
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    recorder = _Recorder()
    prepared: list = []
    real = GuardedSession.plain_get

    def spy(self, *args):
        result = real(self, *args)
        prepared.append(result)
        return result

    monkeypatch.setattr(GuardedSession, "plain_get", spy)
    try:
        from types import SimpleNamespace

        from connectors.woocommerce.client import WooClient

        connection = SimpleNamespace(
            base_url=recorder.root, credentials={"consumer_key": "ck", "consumer_secret": "cs"}, config={}
        )
        client = WooClient(connection)
        client.request("GET", "customers", params={"offset": 0, "per_page": 100})
        assert prepared and prepared[0] is not None
        assert b"consumer_key=ck&consumer_secret=cs" in recorder.heads[0]
    finally:
        recorder.close()
