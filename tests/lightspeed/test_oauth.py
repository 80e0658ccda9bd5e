"""The OAuth connect flow: staff-only start, single-use state bound to the user, code exchange."""

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model

from connectors.lightspeed.models import OAuthState
from connectors.models import Connection

START = "/connectors/lightspeed/oauth/start/"
CALLBACK = "/connectors/lightspeed/oauth/callback/"


def _start(client, user, **params):
    client.force_login(user)
    response = client.get(START, params)
    assert response.status_code == 302, response.content
    return response["Location"]


def _authorize(sandbox, location):
    """The retailer approves on the (sandbox) authorize page, which redirects back with the code."""
    answer = requests.get(location, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


def test_start_redirects_to_authorize_with_a_stored_hashed_state(client, staff, sandbox):
    location = _start(client, staff, name="Main store")
    parts = urlsplit(location)
    query = parse_qs(parts.query)
    assert location.startswith(f"{sandbox.base}/connect?")
    assert query["response_type"] == ["code"] and query["client_id"] == [sandbox.client_id]
    assert query["redirect_uri"] == ["http://testserver/connectors/lightspeed/oauth/callback/"]
    state = query["state"][0]
    assert len(state) >= 32
    row = OAuthState.objects.get()
    assert row.user == staff and row.connection_name == "Main store" and row.used_at is None
    assert state not in row.state_hash  # only a hash is stored


def test_start_is_staff_only(client, org, sandbox):
    user = get_user_model().objects.create_user("carol", password="pw")
    client.force_login(user)
    response = client.get(START)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not OAuthState.objects.exists()


def test_callback_connects_and_stores_tokens_encrypted(client, staff, org, sandbox):
    query = _authorize(sandbox, _start(client, staff, name="Main store"))
    response = client.get(CALLBACK, query)
    assert response.status_code == 200, response.content
    conn = Connection.objects.get(kind="lightspeed")
    assert (conn.organization, conn.external_account_id, conn.name) == (org, "demostore", "Main store")
    assert conn.base_url == f"{sandbox.base}/api/2.0/"
    creds = conn.credentials
    assert set(creds) == {"access_token", "refresh_token", "expires_at"}
    assert creds["access_token"] in sandbox.grants
    assert creds["access_token"] not in conn.credentials_encrypted
    assert creds["access_token"].encode() not in response.content
    assert sandbox.token_calls == ["authorization_code"]
    # The same callback again: the state is spent.
    again = client.get(CALLBACK, query)
    assert again.status_code == 400 and b"already used" in again.content


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda q: q.pop("state"), b"no state"),
        (lambda q: q.update(state="forged-state-value"), b"Unknown state"),
        (lambda q: q.pop("code"), b"no authorization code"),
        (lambda q: q.update(domain_prefix="evil.example.com/"), b"not a Lightspeed domain prefix"),
        (lambda q: q.update(code="code_not_issued"), b"invalid_grant"),
        (lambda q: q.update(error="access_denied"), b"did not grant access"),
    ],
)
def test_callback_refuses_bad_requests(client, staff, sandbox, mutate, message):
    query = _authorize(sandbox, _start(client, staff))
    mutate(query)
    response = client.get(CALLBACK, query)
    assert response.status_code == 400
    assert message in response.content
    assert not Connection.objects.filter(kind="lightspeed").exists()


def test_callback_refuses_an_expired_state(client, staff, sandbox, fake_clock):
    query = _authorize(sandbox, _start(client, staff))
    fake_clock.advance(601)
    response = client.get(CALLBACK, query)
    assert response.status_code == 400 and b"expired" in response.content
    assert sandbox.token_calls == []  # the code was never exchanged


def test_callback_refuses_another_users_state(client, staff, other_staff, sandbox):
    query = _authorize(sandbox, _start(client, staff))
    client.force_login(other_staff)
    response = client.get(CALLBACK, query)
    assert response.status_code == 400 and b"another user" in response.content
    assert sandbox.token_calls == []


def test_retailer_of_another_organization_is_refused(client, staff, other_org, make_ls_connection, sandbox):
    make_ls_connection(other_org)
    query = _authorize(sandbox, _start(client, staff))
    response = client.get(CALLBACK, query)
    assert response.status_code == 400 and b"another organization" in response.content
    assert Connection.objects.get(kind="lightspeed").organization == other_org


def test_reconnect_clears_needs_reauth(client, staff, org, make_ls_connection, sandbox):
    conn = make_ls_connection(org, needs_reauth=True)
    client.get(CALLBACK, _authorize(sandbox, _start(client, staff)))
    conn.refresh_from_db()
    assert not conn.needs_reauth and conn.credentials["access_token"] in sandbox.grants


def test_state_rows_expire(staff, org, sandbox, fake_clock):
    from connectors.lightspeed import services

    services.oauth_start(user=staff, organization=org, session_key="s1")
    row = OAuthState.objects.get()
    assert row.expires_at - row.created_at == dt.timedelta(seconds=600)


@pytest.mark.parametrize("value", ["%C2%B2", "abc", "-1", "9" * 25])
def test_start_with_a_bad_organization_is_a_400(client, staff, sandbox, value):
    """ "²" passes str.isdigit() but not int(): it was a 500."""
    client.force_login(staff)
    response = client.get(f"/connectors/lightspeed/oauth/start/?organization={value}")
    assert response.status_code == 400 and not OAuthState.objects.exists()
