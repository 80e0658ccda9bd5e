"""A connection needing re-authorisation links to its connector's OAuth start, not a dead URL."""

import pytest
from django.urls import resolve

from sync.admin_views import reconnect_url


@pytest.mark.parametrize("kind", ["lightspeed", "tiendanube"])
def test_it_links_oauth_connectors_to_their_reconnect_flow(kind, org, make_connection):
    conn = make_connection(org, kind=kind, credentials={"access_token": "tok-123456"}, needs_reauth=True)
    url = reconnect_url(conn)
    assert f"organization={org.pk}" in url
    assert resolve(url.split("?", 1)[0]).url_name in {"oauth-start", "connect"}


def test_it_links_other_connectors_to_the_connection_admin_page(org, make_connection):
    conn = make_connection(org, kind="woocommerce", credentials={"consumer_key": "ck_x", "consumer_secret": "cs_x"})
    assert reconnect_url(conn) == f"/admin/connectors/connection/{conn.pk}/change/"
