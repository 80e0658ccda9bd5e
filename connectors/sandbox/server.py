"""A tiny threaded WSGI server and router for the sandbox upstreams (demo, tests, benchmarks).

Sandboxes bind to loopback only. Usage::

    app = SandboxApp()

    @app.route("GET", r"/wp-json/wc/v3/customers")
    def customers(req: Request) -> Response: ...

    with serve(app) as base_url:   # "http://127.0.0.1:<port>"
        ...
"""

from __future__ import annotations

import contextlib
import json
import re
import socketserver
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    match: dict[str, str] = field(default_factory=dict)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self):
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True).items()}

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int = 200
    body: bytes | str | object = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status, json.dumps(data).encode(), {"Content-Type": "application/json; charset=UTF-8", **(headers or {})}
        )

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


Handler = Callable[[Request], Response]


class SandboxApp:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern, Handler]] = []
        self.requests_seen: list[Request] = []
        self.lock = threading.RLock()
        self.record_requests = True

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.routes.append((method.upper(), re.compile(f"^{pattern}$"), fn))
            return fn

        return deco

    def not_found(self, req: Request) -> Response:
        return Response.json({"error": "not_found", "message": f"No route for {req.method} {req.path}"}, 404)

    def dispatch(self, req: Request) -> Response:
        for method, pattern, fn in self.routes:
            m = pattern.match(req.path)
            if m and method == req.method:
                req.match = m.groupdict()
                return fn(req)
        return self.not_found(req)

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        req = Request(
            method=environ["REQUEST_METHOD"].upper(),
            path=environ.get("PATH_INFO", "/"),
            query=parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
            headers=headers,
            body=body,
        )
        if self.record_requests:
            with self.lock:
                self.requests_seen.append(req)
        try:
            resp = self.dispatch(req)
        except Exception as exc:  # a sandbox bug must show up as a 500, like a real server
            resp = Response.json({"error": "sandbox_error", "message": repr(exc)}, 500)
        payload = resp.encoded()
        phrase = HTTPStatus(resp.status).phrase if resp.status in HTTPStatus._value2member_map_ else "Unknown"
        out_headers = [(k, v) for k, v in resp.headers.items()]
        if not any(k.lower() == "content-length" for k, _ in out_headers):
            out_headers.append(("Content-Length", str(len(payload))))
        start_response(f"{resp.status} {phrase}", out_headers)
        return [payload]


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # keep test and demo output clean
        pass


class RunningSandbox:
    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("sandboxes bind to loopback only")
        self.app = app
        self.httpd = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> RunningSandbox:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class SandboxLifecycle:
    """start() / stop() / base_url for a sandbox object holding ``self.app``. ``self._released`` lets a
    handler that simulates a hanging upstream return early, so stop() never waits out the hang."""

    app: SandboxApp
    _running: RunningSandbox | None = None
    _released: threading.Event

    def _init_lifecycle(self) -> None:
        self._released = threading.Event()
        self._running = None

    def start(self):
        self._released.clear()
        self._running = RunningSandbox(self.app).start()
        return self

    def stop(self) -> None:
        self._released.set()  # let hanging handlers finish so the server can shut down
        if self._running:
            self._running.stop()

    @property
    def base_url(self) -> str:
        assert self._running, "start() the sandbox first"
        return self._running.base_url


@contextlib.contextmanager
def serve(app, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    running = RunningSandbox(app, host, port).start()
    try:
        yield running.base_url
    finally:
        running.stop()
