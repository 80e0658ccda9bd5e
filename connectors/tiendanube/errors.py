"""Tiendanube's error families (each carries the HTTP status and code the views answer with)."""

from __future__ import annotations


class TiendanubeError(Exception):
    http_status = 400
    code = "invalid"


class OAuthError(TiendanubeError):
    code = "oauth_invalid"


class OAuthUpstreamError(TiendanubeError):
    http_status = 502
    code = "oauth_upstream"


class StoreOwnedElsewhere(TiendanubeError):
    http_status = 409
    code = "store_owned_elsewhere"


class StoreUnavailable(TiendanubeError):
    http_status = 409
    code = "store_unavailable"


class WebhookRejected(TiendanubeError):
    pass


class BadSignature(WebhookRejected):
    http_status = 401
    code = "bad_signature"


class StoreCheckFailed(TiendanubeError):
    """We could not ask the store whether our token still works; Tiendanube redelivers on a 503."""

    http_status = 503
    code = "store_check_failed"
