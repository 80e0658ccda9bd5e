"""MuleSoft Anypoint client: bearer auth (OAuth2 token enforcement policy) and the Rate Limiting policy's
``X-Ratelimit-*`` headers, where ``X-Ratelimit-Reset`` is the milliseconds left in the window."""

from __future__ import annotations

from typing import Any

import requests
from django.conf import settings

from connectors.base import Client, Verdict, default_classify
from core import clock
from core.redaction import register_secret

from . import conf


def ratelimit_reset_seconds(headers) -> float | None:
    """Seconds until the rate-limit window resets, from X-Ratelimit-Reset (ms). None if absent/garbled."""
    raw = headers.get("X-Ratelimit-Reset")
    if raw in (None, ""):
        return None
    try:
        return max(0.0, float(raw) / 1000.0)
    except ValueError:
        return None


class MuleSoftClient(Client):
    kind = "mulesoft"

    def __init__(self, connection, *, session: requests.Session | None = None) -> None:
        super().__init__(connection, session=session)
        self.timeout = conf.TIMEOUT
        self.max_tries = conf.MAX_TRIES
        # A per-connection token (credentials) wins over the process-wide env token; both optional.
        self._token = connection.credentials.get("access_token") or settings.MULESOFT_ACCESS_TOKEN or ""
        register_secret(self._token)

    def authenticate(self, kwargs: dict[str, Any]) -> None:
        if self._token:
            kwargs["headers"]["Authorization"] = f"Bearer {self._token}"

    def classify(self, response: requests.Response) -> tuple[Verdict, float | None]:
        verdict, wait = default_classify(response)
        if response.status_code == 429:
            wait = ratelimit_reset_seconds(response.headers) or wait or 1.0
            if wait > conf.MAX_INLINE_RATE_LIMIT_WAIT:
                # Too long to hold a worker: give up now; the service defers the next refresh by ``wait``.
                return Verdict.FAIL, wait
        return verdict, wait

    def pace(self, response: requests.Response) -> None:
        """Quota spent but this call succeeded: wait for the window (bounded) before the next call."""
        if response.status_code < 400 and response.headers.get("X-Ratelimit-Remaining") == "0":
            wait = ratelimit_reset_seconds(response.headers) or 0.0
            clock.sleep(min(wait, conf.MAX_INLINE_RATE_LIMIT_WAIT))
