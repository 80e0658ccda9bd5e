"""The Lightspeed Retail X-Series 2.0 client: Bearer auth with a self-refreshing system token, pacing by
X-RateLimit-Remaining, 429 with an HTTP-date Retry-After (parsed by connectors.base.parse_retry_after)."""

from __future__ import annotations

import threading
from typing import Any

import requests

from connectors.base import AuthError, Client
from core import clock

from . import conf, services

# Token-endpoint refusals: refreshing again cannot help, the retailer must reconnect.
_FINAL_AUTH_CODES = {"invalid_grant", "invalid_client", "unauthorized_client", "no_refresh_token", "no_token"}


class LightspeedClient(Client):
    kind = "lightspeed"

    def __init__(self, connection, *, session=None) -> None:
        super().__init__(connection, session=session)
        self._creds: dict | None = None
        self._lock = threading.Lock()
        self._owner_thread = threading.get_ident()
        self.refreshes = 0  # refresh calls this client made (tests, activity)

    # -- auth --------------------------------------------------------------------------------------------
    def _credentials(self) -> dict:
        with self._lock:
            if self._creds is None:
                self._creds = services.credentials_for_request(self.connection)
            return self._creds

    def authenticate(self, kwargs: dict[str, Any]) -> None:
        creds = self._credentials()
        if creds.get("personal_token"):
            token = creds["personal_token"]
        else:
            if services.token_expiring(creds):
                creds = self._refresh(stale=creds.get("access_token"))
            token = creds["access_token"]
        kwargs["headers"]["Authorization"] = f"Bearer {token}"

    def on_auth_error(self, error: AuthError) -> bool:
        """One refresh on a 401 (OAuth only); a personal token or a refused grant ends in needs-reauth."""
        if error.code in _FINAL_AUTH_CODES or error.status == 403:
            return False  # 403: the token is valid but lacks a scope; a new token would not help
        creds = self._credentials()
        if creds.get("personal_token") or not creds.get("refresh_token"):
            return False
        self._refresh(stale=creds.get("access_token"))
        return True

    def _refresh(self, *, stale: str | None) -> dict:
        creds = services.token_refresh(
            connection_id=self.connection.pk,
            stale_access_token=stale,
            close_db_after=threading.get_ident() != self._owner_thread,
        )
        with self._lock:
            if creds.get("access_token") != stale:
                self.refreshes += 1
            self._creds = creds
        return creds

    # -- rate limits ---------------------------------------------------------------------------------------
    def pace(self, response: requests.Response) -> None:
        """Lightspeed allows (300 x registers + 50) calls per 5-minute window. When few remain, space the
        next calls evenly over the window instead of running into a 429 (which costs a whole wait)."""
        if response.status_code == 429:
            return  # the Retry-After wait covers it; pacing on top would wait twice
        wait = pace_delay(response.headers.get("X-RateLimit-Limit"), response.headers.get("X-RateLimit-Remaining"))
        if wait:
            clock.sleep(wait)


def pace_delay(limit: str | None, remaining: str | None) -> float:
    try:
        left = int(remaining) if remaining is not None else None
        cap = int(limit) if limit is not None else None
    except ValueError:
        return 0.0
    if left is None or left > conf.pace_low_water():
        return 0.0
    window = float(conf.rate_window_seconds())
    per_call = window / cap if cap and cap > 0 else window / 50
    # The closer to zero, the longer the pause: at 0 left we wait as long as low_water calls would take.
    return per_call * (conf.pace_low_water() - left + 1)
