"""Lightspeed settings, read from the environment at call time (so tests and the demo can point the OAuth
endpoints at the sandbox without touching config/settings.py). See .env.example."""

from __future__ import annotations

import datetime as dt
import re

import environ

env = environ.Env()

# Real hosts. {domain_prefix} is validated (DOMAIN_PREFIX_RE) before it is ever put into a URL.
DEFAULT_AUTHORIZE_URL = "https://secure.retail.lightspeed.app/connect"
DEFAULT_TOKEN_URL = "https://{domain_prefix}.retail.lightspeed.app/api/1.0/token"
DEFAULT_API_BASE_URL = "https://{domain_prefix}.retail.lightspeed.app/api/2.0/"

# A retailer's domain prefix is a DNS label: anything else could steer our requests to another host.
DOMAIN_PREFIX_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def client_id() -> str:
    return env("LIGHTSPEED_CLIENT_ID", default="")


def client_secret() -> str:
    return env("LIGHTSPEED_CLIENT_SECRET", default="")


def redirect_uri() -> str:
    from django.conf import settings

    default = settings.PUBLIC_BASE_URL.rstrip("/") + "/connectors/lightspeed/oauth/callback/"
    return env("LIGHTSPEED_REDIRECT_URI", default=default)


def authorize_url() -> str:
    return env("LIGHTSPEED_AUTHORIZE_URL", default=DEFAULT_AUTHORIZE_URL)


def token_url_template() -> str:
    """Where codes and refresh tokens are exchanged; ``{domain_prefix}`` is filled in. The sandbox sets it."""
    return env("LIGHTSPEED_TOKEN_URL", default=DEFAULT_TOKEN_URL)


def api_base_url_template() -> str:
    """The API base of a newly connected retailer; ``{domain_prefix}`` is filled in. The sandbox sets it."""
    return env("LIGHTSPEED_API_BASE_URL", default=DEFAULT_API_BASE_URL)


def state_ttl_seconds() -> int:
    return env.int("LIGHTSPEED_OAUTH_STATE_TTL", default=600)


def refresh_margin_seconds() -> int:
    """Refresh an access token this long before it expires (clock skew, a page in flight)."""
    return env.int("LIGHTSPEED_REFRESH_MARGIN", default=300)


def refresh_lock_idle_seconds() -> float:
    """Longest a refresh may hold the Connection row lock idle (waiting on the token endpoint) before
    PostgreSQL ends its session: a hung worker, or a host gone without closing its socket, would otherwise
    keep every other worker of the connection waiting. Default: the HTTP connect + read timeouts + 30 s."""
    from django.conf import settings

    default = sum(float(t) for t in settings.SYNC_HTTP_TIMEOUT) + 30
    return env.float("LIGHTSPEED_REFRESH_LOCK_IDLE_SECONDS", default=default)


def pace_low_water() -> int:
    """Below this many remaining requests in the window, space calls out evenly over the window."""
    return env.int("LIGHTSPEED_PACE_LOW_WATER", default=10)


def rate_window_seconds() -> int:
    return env.int("LIGHTSPEED_RATE_WINDOW", default=300)


def page_size() -> int:
    return env.int("LIGHTSPEED_PAGE_SIZE", default=200)


def sync_minutes() -> int:
    """Interval of the per-connection schedules (0 = no schedules)."""
    return env.int("LIGHTSPEED_SYNC_MINUTES", default=60)


def sync_interval(connection=None) -> dt.timedelta | None:
    """The run policy's interval (sync.policy.Every.interval_from); None: not scheduled."""
    minutes = sync_minutes()
    return dt.timedelta(minutes=minutes) if minutes > 0 else None
