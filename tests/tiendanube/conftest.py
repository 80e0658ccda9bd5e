from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests

from connectors.sandbox.server import serve
from connectors.tiendanube.sandbox import SANDBOX_SECRET, TiendanubeSandbox

CALLBACK = "http://testserver/connectors/tiendanube/oauth/callback/"


@pytest.fixture
def tn_settings(settings):
    """Point the connector at a sandbox; a local-memory bucket cache (the bucket is shared by threads of
    this process; the default DB cache would be shared by processes - not needed in one test)."""
    settings.CACHES = {
        **settings.CACHES,
        "tn-bucket": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tn-bucket"},
    }
    settings.TIENDANUBE_APP_ID = "4242"
    settings.TIENDANUBE_CLIENT_SECRET = SANDBOX_SECRET
    settings.TIENDANUBE_BUCKET_CACHE = "tn-bucket"
    settings.TIENDANUBE_USER_AGENT = "SyncHub tests (tests@example.com)"
    from django.core.cache import caches

    yield settings
    caches["tn-bucket"].clear()


def make_sandbox(tn_settings, **kw):
    sb = TiendanubeSandbox(redirect_uri=CALLBACK, **kw)
    return sb


@pytest.fixture
def tn_sandbox(tn_settings):
    """Factory: start a sandbox and point the settings at it."""
    import contextlib

    stack = contextlib.ExitStack()

    def start(**kw):
        sb = make_sandbox(tn_settings, **kw)
        base = stack.enter_context(serve(sb.app))
        sb.base_url = base
        tn_settings.TIENDANUBE_AUTHORIZE_URL = base + "/apps/{app_id}/authorize"
        tn_settings.TIENDANUBE_TOKEN_URL = base + "/apps/authorize/token"
        tn_settings.TIENDANUBE_API_URL = base + "/v1/"
        return sb

    yield start
    stack.close()


def oauth_connect(client, organization, *, store: str | None = None) -> tuple[object, object]:
    """Drive the real flow: our start view -> sandbox authorize (the browser step) -> our callback."""
    start = client.get(f"/connectors/tiendanube/connect/?organization={organization.pk}")
    assert start.status_code == 302, start.content
    authorize = start["Location"] + (f"&store={store}" if store else "")
    redirect = requests.get(authorize, allow_redirects=False, timeout=5)
    assert redirect.status_code == 302
    parts = urlsplit(redirect.headers["Location"])
    return client.get(f"{parts.path}?{parts.query}&format=json"), parts


@pytest.fixture
def store_conn(org, make_connection, tn_sandbox):
    """A connected store without going through OAuth (for scheduling tests)."""
    from connectors.tiendanube import conf

    def make(sb, store_id="1001", token=None):
        st = sb.stores[store_id]
        st.installed, st.token = True, token or f"tok-{store_id}-abcdef"
        return make_connection(
            org,
            kind="tiendanube",
            base_url=conf.get().store_base_url(store_id),
            external_account_id=store_id,
            name=f"store {store_id}",
            credentials={"access_token": st.token},
        )

    return make
