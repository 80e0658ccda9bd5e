"""HTTP client for the WooCommerce REST API v3 (``{store}/wp-json/wc/v3/``).

Auth (upstream-apis.md §1): over HTTPS, HTTP Basic with the consumer key as user and the secret as
password, or the same pair as ``consumer_key``/``consumer_secret`` query parameters (config
``auth_in_query``) for hosts that strip the Authorization header. Over plain HTTP real WooCommerce only
accepts OAuth 1.0a signatures, so we refuse plain HTTP to any host except loopback: that is the local
sandbox, which accepts the query-string keys (and we use that form there, as Basic auth over HTTP is
exactly what a real store would reject).
"""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from connectors.base import Client, PermanentError, Verdict, default_classify, parse_retry_after

API_PREFIX = "wp-json/wc/v3/"


def _is_loopback_host(host: str | None) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def api_root(base_url: str) -> str:
    """The store URL as entered (``https://shop.example``) or already pointing at the API."""
    base = (base_url or "").rstrip("/") + "/"
    return base if "/wp-json/" in base else base + API_PREFIX


class WooClient(Client):
    kind: ClassVar[str] = "woocommerce"

    def __init__(self, connection, *, session: requests.Session | None = None) -> None:
        super().__init__(connection, session=session)
        self.base_url = api_root(connection.base_url)
        parts = urlsplit(self.base_url)
        self.plain_http = parts.scheme == "http"
        self.loopback = _is_loopback_host(parts.hostname)
        creds = connection.credentials
        self._key = creds.get("consumer_key", "")
        self._secret = creds.get("consumer_secret", "")
        self.query_auth = bool(connection.config.get("auth_in_query")) or self.plain_http

    def authenticate(self, kwargs: dict[str, Any]) -> None:
        if self.plain_http and not self.loopback:
            # Sending the keys in clear text to a real store would leak them and fail anyway (OAuth1 only).
            raise PermanentError("WooCommerce keys are only sent over HTTPS; use an https:// store URL")
        if self.query_auth:
            kwargs["params"].update(consumer_key=self._key, consumer_secret=self._secret)
        else:
            kwargs["auth"] = (self._key, self._secret)

    def classify(self, response: requests.Response) -> tuple[Verdict, float | None]:
        status = response.status_code
        if status == 429:
            return Verdict.RATE_LIMITED, parse_retry_after(response.headers.get("Retry-After"))
        if status >= 500:
            return Verdict.RETRY, parse_retry_after(response.headers.get("Retry-After"))
        if status in (401, 403):
            # 401 woocommerce_rest_cannot_view = unknown key; ..._authentication_error = bad secret.
            return Verdict.AUTH, None
        if status == 400:
            return Verdict.FAIL, None  # rest_invalid_param: our request is wrong, retrying will not help
        return default_classify(response)
