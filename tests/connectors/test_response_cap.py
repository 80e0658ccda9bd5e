"""Invariant 17: a response body over SYNC_MAX_RESPONSE_BYTES is refused while it streams in. The page fails
(ResponseTooLarge is a BadPage, so the cursor stays) and the client stops reading: memory stays bounded."""

from __future__ import annotations

import threading
import types

import pytest

from connectors.base import BadPage, Client, ResponseTooLarge
from connectors.sandbox.server import RunningSandbox

CHUNK = b"[" + b" " * (64 * 1024 - 1)  # one 64 KiB piece of a (never finished) JSON array


class Streamer:
    """A WSGI upstream that streams ``chunks`` pieces and counts how many the client made it produce."""

    def __init__(self, chunks: int, *, announce: bool) -> None:
        self.chunks, self.announce = chunks, announce
        self.produced = 0
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        headers = [("Content-Type", "application/json")]
        if self.announce:
            headers.append(("Content-Length", str(self.chunks * len(CHUNK))))
        start_response("200 OK", headers)
        return self._body()

    def _body(self):
        for _ in range(self.chunks):
            with self.lock:
                self.produced += 1
            yield CHUNK


@pytest.fixture
def upstream():
    servers = []

    def start(streamer):
        server = RunningSandbox(streamer).start()
        servers.append(server)
        return server.base_url

    yield start
    for server in servers:
        server.stop()


def client(base_url: str) -> Client:
    return Client(types.SimpleNamespace(base_url=base_url))


def test_it_refuses_a_body_that_announces_more_than_the_cap(upstream, settings):
    settings.SYNC_MAX_RESPONSE_BYTES = 1024 * 1024
    streamer = Streamer(800, announce=True)  # 50 MiB announced
    with pytest.raises(ResponseTooLarge, match="over the 1,048,576-byte cap") as caught:
        client(upstream(streamer)).request("GET", "/customers")
    assert isinstance(caught.value, BadPage)  # the engine fails the page and keeps the cursor
    assert streamer.produced < 800


def test_it_stops_reading_a_chunked_body_at_the_cap(upstream, settings):
    settings.SYNC_MAX_RESPONSE_BYTES = 1024 * 1024  # 16 chunks of 64 KiB
    streamer = Streamer(800, announce=False)
    with pytest.raises(ResponseTooLarge, match="kept coming"):
        client(upstream(streamer)).request("GET", "/customers")
    # It read a little past the cap (socket buffers), never the 50 MiB the upstream offered.
    assert streamer.produced < 200


def test_a_body_under_the_cap_is_read_whole(upstream, settings):
    settings.SYNC_MAX_RESPONSE_BYTES = 1024 * 1024
    streamer = Streamer(3, announce=False)
    response = client(upstream(streamer)).request("GET", "/customers")
    assert len(response.content) == 3 * len(CHUNK) and streamer.produced == 3
