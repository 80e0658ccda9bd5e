"""Talking to Lightspeed's token endpoint (form-encoded POST to /api/1.0/token). Pure HTTP: no database.

Errors are classified here, once: ``invalid_grant`` (a revoked, rotated-away or unknown refresh token or
code) is an AuthError with code "invalid_grant", which ends in needs-reauth and is never retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

import requests
from django.conf import settings

from connectors.base import AuthError, PermanentError, TransientError, error_message
from core import clock
from core.http import BlockedDestination, check_url, guarded_session

from . import conf


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str
    expires_at: int  # unix seconds
    domain_prefix: str = ""

    def as_credentials(self) -> dict:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token, "expires_at": self.expires_at}


def validate_domain_prefix(value: str | None) -> str:
    prefix = (value or "").strip().lower()
    if not conf.DOMAIN_PREFIX_RE.match(prefix):
        raise PermanentError(f"not a Lightspeed domain prefix: {prefix[:70]!r}")
    return prefix


def token_url_for(*, domain_prefix: str = "", base_url: str = "") -> str:
    """The token endpoint lives next to the API: https://{prefix}.retail.lightspeed.app/api/1.0/token.
    Derived from the connection's API base when there is one (so a sandbox connection refreshes against
    its sandbox), else from LIGHTSPEED_TOKEN_URL / the real host template."""
    if base_url and "/api/2.0" in base_url:
        return urljoin(base_url.rstrip("/") + "/", "../1.0/token")
    return conf.token_url_template().format(domain_prefix=validate_domain_prefix(domain_prefix))


def api_base_url_for(domain_prefix: str) -> str:
    return conf.api_base_url_template().format(domain_prefix=validate_domain_prefix(domain_prefix))


def exchange_code(*, code: str, domain_prefix: str) -> TokenSet:
    return _token_post(
        token_url_for(domain_prefix=domain_prefix),
        {
            "code": code,
            "client_id": conf.client_id(),
            "client_secret": conf.client_secret(),
            "grant_type": "authorization_code",
            "redirect_uri": conf.redirect_uri(),
        },
    )


def refresh(*, refresh_token: str, token_url: str) -> TokenSet:
    return _token_post(
        token_url,
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": conf.client_id(),
            "client_secret": conf.client_secret(),
        },
    )


def _token_post(url: str, form: dict[str, str]) -> TokenSet:
    # Not retried: refresh tokens rotate, so replaying a refresh whose answer we lost only burns the token.
    try:
        check_url(url)
    except BlockedDestination as exc:
        raise PermanentError(f"token endpoint refused: {exc}") from None
    session = guarded_session(pool_maxsize=1)
    try:
        response = session.post(
            url,
            data=form,
            headers={"Accept": "application/json"},
            timeout=settings.SYNC_HTTP_TIMEOUT,
            allow_redirects=False,
        )
    except requests.exceptions.ConnectionError as exc:
        from connectors.base import _caused_by

        if _caused_by(exc, BlockedDestination):
            raise PermanentError("token endpoint refused: destination not allowed") from None
        raise TransientError(
            f"network error talking to the Lightspeed token endpoint: {exc.__class__.__name__}"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise TransientError(f"Lightspeed token request failed: {exc.__class__.__name__}") from None
    finally:
        session.close()
    return _parse_token_response(response, grant_type=form.get("grant_type", ""))


def _parse_token_response(response: requests.Response, *, grant_type: str = "") -> TokenSet:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if status >= 400 or error:
        message = error_message(response)
        if error == "invalid_grant" and grant_type == "refresh_token":
            # Say what can have happened: besides a revocation, a refresh whose answer was never stored (a
            # worker killed between Lightspeed's answer and our commit) has rotated the stored token away.
            raise AuthError(
                "Lightspeed refused the stored refresh token (invalid_grant): it was revoked, or already used by "
                "a refresh whose answer was never stored (refresh tokens rotate; e.g. a worker killed mid-refresh). "
                f"Reconnect the retailer to sync again. {message}",
                status=status,
                code=str(error),
            )
        if error == "invalid_grant" or status in (400, 401) and error in ("invalid_client", "unauthorized_client"):
            raise AuthError(
                f"Lightspeed refused the grant ({error}); reconnect the retailer. {message}",
                status=status,
                code=str(error),
            )
        if status == 429 or status >= 500:
            raise TransientError(message, status=status)
        raise PermanentError(message, status=status)
    if not isinstance(body, dict) or not body.get("access_token") or not body.get("refresh_token"):
        raise PermanentError("Lightspeed token endpoint answered without an access and refresh token")
    expires_at = body.get("expires")
    if not isinstance(expires_at, int) or isinstance(expires_at, bool):
        try:
            expires_at = int(clock.now().timestamp()) + int(body.get("expires_in") or 0)
        except (TypeError, ValueError):
            raise PermanentError("Lightspeed token endpoint answered without a usable expiry") from None
    return TokenSet(
        access_token=str(body["access_token"]),
        refresh_token=str(body["refresh_token"]),
        expires_at=int(expires_at),
        domain_prefix=str(body.get("domain_prefix") or ""),
    )
