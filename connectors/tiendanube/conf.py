"""Tiendanube settings, read from the environment (a Django setting of the same name wins, for tests).

Read on every call (cheap) so the demo and tests can point the connector at the sandbox at run time."""

from __future__ import annotations

import os
from dataclasses import dataclass

import environ
from django.conf import settings

_env = environ.Env()

DEFAULTS: dict[str, object] = {
    "TIENDANUBE_APP_ID": "",
    "TIENDANUBE_CLIENT_SECRET": "",
    "TIENDANUBE_AUTHORIZE_URL": "https://www.tiendanube.com/apps/{app_id}/authorize",
    "TIENDANUBE_TOKEN_URL": "https://www.tiendanube.com/apps/authorize/token",
    "TIENDANUBE_API_URL": "https://api.tiendanube.com/v1/",
    "TIENDANUBE_USER_AGENT": "",
    "TIENDANUBE_OAUTH_STATE_TTL": 600,
    "TIENDANUBE_BUCKET_SIZE": 40,
    "TIENDANUBE_BUCKET_DRAIN": 2.0,
    "TIENDANUBE_BUCKET_MARGIN": 2,
    "TIENDANUBE_BUCKET_CACHE": "default",
    "TIENDANUBE_PAGE_SIZE": 200,
    "TIENDANUBE_RESULT_CAP": 10_000,
    "TIENDANUBE_PAGE_CONCURRENCY": 3,
    "TIENDANUBE_POST_SYNC_HOOK": "",
    # Seconds a delivery is remembered to drop its duplicates. Short on purpose: a body is only
    # {store_id, event, id}, so a second real change of the same record sends the same bytes; within the
    # window it is left to the next scheduled sync (the store is on the 5-minute tier after a webhook).
    # 15 min covers Tiendanube's redelivery steps (0, 5, 10, 15 min).
    "TIENDANUBE_WEBHOOK_DEDUPE_SECONDS": 900,
}


def _get(name: str):
    if hasattr(settings, name):
        return getattr(settings, name)
    default = DEFAULTS[name]
    if name not in os.environ:
        return default
    if isinstance(default, bool):
        return _env.bool(name)
    if isinstance(default, int):
        return _env.int(name)
    if isinstance(default, float):
        return _env.float(name)
    return _env.str(name)


@dataclass(frozen=True)
class Conf:
    app_id: str
    client_secret: str
    authorize_url: str
    token_url: str
    api_url: str
    user_agent: str
    oauth_state_ttl: int
    bucket_size: int
    bucket_drain: float
    bucket_margin: int
    bucket_cache: str
    page_size: int
    result_cap: int
    page_concurrency: int
    post_sync_hook: str
    webhook_dedupe_seconds: int = 900

    @property
    def missing(self) -> list[str]:
        """Required settings that are not set (reported by the health check)."""
        required = {"TIENDANUBE_APP_ID": self.app_id, "TIENDANUBE_CLIENT_SECRET": self.client_secret}
        return [name for name, value in required.items() if not value]

    def store_base_url(self, store_id: str) -> str:
        return f"{self.api_url.rstrip('/')}/{store_id}/"


def get() -> Conf:
    return Conf(
        app_id=str(_get("TIENDANUBE_APP_ID")),
        client_secret=str(_get("TIENDANUBE_CLIENT_SECRET")),
        authorize_url=str(_get("TIENDANUBE_AUTHORIZE_URL")),
        token_url=str(_get("TIENDANUBE_TOKEN_URL")),
        api_url=str(_get("TIENDANUBE_API_URL")),
        user_agent=str(_get("TIENDANUBE_USER_AGENT")) or f"SyncHub ({settings.DEFAULT_FROM_EMAIL})",
        oauth_state_ttl=int(_get("TIENDANUBE_OAUTH_STATE_TTL")),
        bucket_size=int(_get("TIENDANUBE_BUCKET_SIZE")),
        bucket_drain=float(_get("TIENDANUBE_BUCKET_DRAIN")),
        bucket_margin=int(_get("TIENDANUBE_BUCKET_MARGIN")),
        bucket_cache=str(_get("TIENDANUBE_BUCKET_CACHE")),
        page_size=min(200, int(_get("TIENDANUBE_PAGE_SIZE"))),
        result_cap=int(_get("TIENDANUBE_RESULT_CAP")),
        page_concurrency=max(1, int(_get("TIENDANUBE_PAGE_CONCURRENCY"))),
        post_sync_hook=str(_get("TIENDANUBE_POST_SYNC_HOOK")),
        webhook_dedupe_seconds=int(_get("TIENDANUBE_WEBHOOK_DEDUPE_SECONDS")),
    )
