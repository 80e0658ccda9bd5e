"""Tiendanube client: the `Authentication: bearer` header, a User-Agent with a contact, error dialect,
and a leaky-bucket pacer whose state lives in the shared Django cache so every worker talking to one
store draws from the same bucket (a healthy sync never sees a 429)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import requests
from django.core.cache import caches

from connectors.base import Client, Verdict, default_classify, parse_retry_after
from core import clock

from . import conf

log = logging.getLogger(__name__)


class Bucket:
    """GCRA over the shared cache: each request reserves the next free slot of the store's bucket
    (capacity ``size`` minus a safety ``margin``, draining ``drain`` per second) and sleeps until it.
    The server's own view (x-rate-limit-remaining / -reset) pulls our estimate up when it is behind."""

    LOCK_TIMEOUT = 5

    def __init__(self, key: str, *, size: int, drain: float, margin: int, cache_alias: str) -> None:
        self.key = f"tiendanube:bucket:{key}"
        self.lock_key = self.key + ":lock"
        self.size = size
        self.drain = drain
        self.margin = margin
        self.cache = caches[cache_alias]

    def _locked(self, fn):
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.LOCK_TIMEOUT
        # A short mutex for one read-modify-write; contention is brief, so a real (not clock) spin is fine.
        while not self.cache.add(self.lock_key, token, timeout=self.LOCK_TIMEOUT):
            if time.monotonic() > deadline:
                break  # a holder died: proceed rather than deadlock (the lock expires by itself too)
            time.sleep(0.002)
        try:
            return fn()
        finally:
            if self.cache.get(self.lock_key) == token:
                self.cache.delete(self.lock_key)

    def _state(self) -> dict:
        state = self.cache.get(self.key) or {}
        return {
            "tat": float(state.get("tat", 0.0)),
            "size": int(state.get("size", self.size)),
            "drain": float(state.get("drain", self.drain)),
        }

    def acquire(self) -> float:
        """Reserve one request; sleep (core.clock) until it may be sent. Returns the wait."""

        def reserve() -> float:
            now = clock.now().timestamp()
            st = self._state()
            interval = 1.0 / st["drain"]
            tolerance = max(st["size"] - self.margin - 1, 0) * interval
            tat = max(st["tat"], now) + interval
            wait = max(0.0, tat - interval - tolerance - now)
            st["tat"] = tat
            self.cache.set(self.key, st, timeout=3600)
            return wait

        wait = self._locked(reserve)
        if wait > 0:
            clock.sleep(wait)
        return wait

    def observe(self, response: requests.Response) -> None:
        """Fold the server's bucket level into ours (other apps of the same store do not exist: the
        bucket is per store+app, but a restarted cache or a lost reservation does)."""
        h = response.headers
        try:
            limit = int(h["x-rate-limit-limit"])
            remaining = int(h["x-rate-limit-remaining"])
            reset_ms = float(h["x-rate-limit-reset"])
        except (KeyError, ValueError):
            return

        def update() -> None:
            now = clock.now().timestamp()
            st = self._state()
            level = max(limit - remaining, 0)
            if level > 0 and reset_ms > 0:
                st["drain"] = level / (reset_ms / 1000.0)  # the plan's real rate (x10 on some plans)
            st["size"] = limit
            st["tat"] = max(st["tat"], now + level / st["drain"])
            self.cache.set(self.key, st, timeout=3600)

        self._locked(update)

    def wait_for_one(self, response: requests.Response) -> float:
        """After a 429: how long until one request fits (Retry-After if given, else reset / limit)."""
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is not None:
            return retry_after
        try:
            reset = float(response.headers["x-rate-limit-reset"]) / 1000.0
            limit = max(int(response.headers.get("x-rate-limit-limit", self.size)), 1)
            return max(reset / limit, 1.0 / self.drain)
        except (KeyError, ValueError):
            return 1.0 / self.drain


class TiendanubeClient(Client):
    kind = "tiendanube"

    def __init__(self, connection, *, session=None) -> None:
        super().__init__(connection, session=session)
        cfg = conf.get()
        self.user_agent = cfg.user_agent
        self.bucket = Bucket(
            connection.external_account_id or str(connection.pk),
            size=cfg.bucket_size,
            drain=cfg.bucket_drain,
            margin=cfg.bucket_margin,
            cache_alias=cfg.bucket_cache,
        )
        self.rate_limited_count = 0

    def authenticate(self, kwargs: dict[str, Any]) -> None:
        token = self.connection.credentials.get("access_token", "")
        kwargs["headers"]["Authentication"] = f"bearer {token}"
        kwargs["headers"]["User-Agent"] = self.user_agent

    def send_once(self, method, path, **kw):
        self.bucket.acquire()
        return super().send_once(method, path, **kw)

    def pace(self, response: requests.Response) -> None:
        self.bucket.observe(response)

    def classify(self, response: requests.Response) -> tuple[Verdict, float | None]:
        status = response.status_code
        if status == 401:
            return Verdict.AUTH, None
        if status == 402:
            return Verdict.FAIL, None  # store suspended or app unpaid: not fixed by reconnecting
        if status == 429:
            self.rate_limited_count += 1
            return Verdict.RATE_LIMITED, self.bucket.wait_for_one(response)
        return default_classify(response)

    def get_page(self, path: str, params: dict) -> tuple[list, requests.Response]:
        data, response = self.get_json(path, params=params)
        if not isinstance(data, list):
            from connectors.base import BadPage

            raise BadPage(f"expected a JSON list from {path}, got {type(data).__name__}: {json.dumps(data)[:100]}")
        return data, response
