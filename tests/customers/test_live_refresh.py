"""Through a real WSGI server (Django's live server, not the test client's emulation): the loyalty refresh is
enqueued by the request_finished receiver after the response went out, and the request's thread ends with
its database connection handled by Django's end-of-request rule."""

from __future__ import annotations

import time

import pytest
import requests
from django.contrib.auth import get_user_model
from django_q.models import OrmQ
from rest_framework.authtoken.models import Token

from sync.models import Membership, Organization, SyncQueue


@pytest.mark.django_db(transaction=True)
def test_refresh_is_enqueued_after_a_live_response(live_server):
    org = Organization.objects.create(name="Live", slug="live")
    user = get_user_model().objects.create_user("live", password="pw-live", is_staff=True)
    Membership.objects.create(user=user, organization=org, role="admin")
    token = Token.objects.create(user=user)
    from sync.services import setting_set

    setting_set(key="mulesoft_loyalty_sync_endpoint", value="http://127.0.0.1:9/api", organization=org)
    response = requests.get(
        f"{live_server.url}/api/customers", headers={"Authorization": f"Token {token.key}"}, timeout=10
    )
    assert response.status_code == 200 and response.json()["count"] == 0
    deadline = time.monotonic() + 5
    queued = []
    while time.monotonic() < deadline and not queued:  # the server thread finishes after the client got the body
        queued = [q.task["args"] for q in OrmQ.objects.all() if q.task.get("func", "") == "sync.tasks.run_queue"]
        time.sleep(0.05)
    queue = SyncQueue.objects.get(resource="loyalty_tiers")
    assert queued == [(queue.pk,)] and queue.organization_id == org.pk
