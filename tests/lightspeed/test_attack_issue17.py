"""Issue 17 re-attack on Lightspeed's OAuth state: replayed from another session (another organization's staff,
an anonymous browser, the same session after use); each is refused and the code is never exchanged."""

from __future__ import annotations

from django.test import Client

from connectors.models import Connection

from .test_oauth import CALLBACK, _authorize, _start


def test_state_replayed_by_another_organizations_staff_anonymous_or_twice_is_refused(
    client, staff, other_staff, sandbox
):
    query = _authorize(sandbox, _start(client, staff))
    attacker = Client()
    attacker.force_login(other_staff)
    assert attacker.get(CALLBACK, query).status_code in (400, 403, 404)
    anonymous = Client().get(CALLBACK, query)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    assert sandbox.token_calls == [] and not Connection.objects.filter(kind="lightspeed").exists()
    assert client.get(CALLBACK, query).status_code == 200  # the victim's own flow still completes
    again = client.get(CALLBACK, query)  # replay of a used state, same session
    assert again.status_code == 400
    assert Connection.objects.filter(kind="lightspeed").count() == 1 and len(sandbox.token_calls) == 1
