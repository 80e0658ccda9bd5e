"""Issue 17: Lightspeed's OAuth state is bound to the browser session that started the flow (as
Tiendanube's is), on top of the user, single use and a short life (tests/lightspeed/test_oauth.py)."""

from __future__ import annotations

from django.test import Client

from connectors.lightspeed.models import OAuthState
from connectors.models import Connection

from .test_oauth import CALLBACK, _authorize, _start


def test_the_same_user_in_another_session_is_refused(client, staff, sandbox):
    query = _authorize(sandbox, _start(client, staff))
    elsewhere = Client()
    elsewhere.force_login(staff)  # same user, a different session (e.g. a link sent to the victim)
    response = elsewhere.get(CALLBACK, query)
    assert response.status_code == 400 and b"another browser session" in response.content
    assert sandbox.token_calls == [] and not Connection.objects.filter(kind="lightspeed").exists()


def test_a_refused_callback_does_not_burn_the_state_of_the_real_session(client, staff, sandbox):
    query = _authorize(sandbox, _start(client, staff))
    elsewhere = Client()
    elsewhere.force_login(staff)
    assert elsewhere.get(CALLBACK, query).status_code == 400
    assert client.get(CALLBACK, query).status_code == 200  # the session that started it still can
    assert Connection.objects.filter(kind="lightspeed").count() == 1


def test_only_a_hash_of_the_session_key_is_stored(client, staff, sandbox):
    _start(client, staff)
    row = OAuthState.objects.get()
    key = client.session.session_key
    assert len(row.session_hash) == 64 and key not in row.session_hash


def test_state_without_a_session_binding_is_refused(client, staff, sandbox):
    query = _authorize(sandbox, _start(client, staff))
    OAuthState.objects.update(session_hash="")  # a row from before the binding existed
    response = client.get(CALLBACK, query)
    assert response.status_code == 400 and b"another browser session" in response.content
