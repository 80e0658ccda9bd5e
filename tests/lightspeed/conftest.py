import pytest

from connectors.lightspeed.sandbox import LightspeedSandbox
from connectors.sandbox.server import serve

PAGE_SIZE = 5


@pytest.fixture
def sandbox(monkeypatch):
    """A small deterministic retailer, 5 records per page, OAuth env pointed at it."""
    sb = LightspeedSandbox(customers=12, products=6, customer_groups=3)
    with serve(sb.app()) as base:
        sb.base = base
        monkeypatch.setenv("LIGHTSPEED_PAGE_SIZE", str(PAGE_SIZE))
        monkeypatch.setenv("LIGHTSPEED_CLIENT_ID", sb.client_id)
        monkeypatch.setenv("LIGHTSPEED_CLIENT_SECRET", sb.client_secret)
        monkeypatch.setenv("LIGHTSPEED_AUTHORIZE_URL", f"{base}/connect")
        monkeypatch.setenv("LIGHTSPEED_TOKEN_URL", f"{base}/api/1.0/token")
        monkeypatch.setenv("LIGHTSPEED_API_BASE_URL", f"{base}/api/2.0/")
        monkeypatch.setenv("LIGHTSPEED_REDIRECT_URI", "http://testserver/connectors/lightspeed/oauth/callback/")
        yield sb


@pytest.fixture
def make_ls_connection(make_connection, sandbox):
    def make(organization, *, credentials=None, prefix="demostore", **kw):
        if credentials is None:
            g = sandbox.grant()
            credentials = {"access_token": g.access_token, "refresh_token": g.refresh_token, "expires_at": g.expires}
        return make_connection(
            organization,
            kind="lightspeed",
            base_url=f"{sandbox.base}/api/2.0/",
            external_account_id=prefix,
            credentials=credentials,
            config={"domain_prefix": prefix, "auth": "oauth"},
            **kw,
        )

    return make


@pytest.fixture
def ls_conn(org, make_ls_connection):
    return make_ls_connection(org)
