import datetime as dt

import pytest
import requests
from django.test import Client
from django_q.models import Schedule

from connectors.models import Connection
from connectors.tiendanube.models import OAuthState, PendingInstall
from sync.models import RunSchedule

from .conftest import oauth_connect

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_staff(staff):
    c = Client()
    c.force_login(staff)
    return c


def test_full_flow_connects_store_schedules_it_and_syncs(
    client_staff, org, tn_sandbox, django_capture_on_commit_callbacks
):
    sb = tn_sandbox(stores=2, records=12)
    with django_capture_on_commit_callbacks(execute=True):
        response, _ = oauth_connect(client_staff, org, store="1002")
    assert response.status_code == 200, response.content
    conn = Connection.objects.get(kind="tiendanube", external_account_id="1002")
    assert conn.organization == org and conn.base_url.endswith("/v1/1002/")
    assert conn.credentials["access_token"] == sb.stores["1002"].token
    assert sb.stores["1002"].token not in str(response.content)
    sched = RunSchedule.objects.get(connection=conn, resource="")
    # One tick per kind serves every store (sync.scheduler); the store is scheduled by its RunSchedule row.
    assert Schedule.objects.filter(name="tiendanube:tick", repeats=-1).exists()
    assert not Schedule.objects.filter(name=f"tiendanube:{conn.pk}").exists() and sched.next_sync_at is not None
    # first sync ran at once (django-q2 inline in tests)
    from commerce.models import Order, Product
    from customers.models import Customer

    assert Product.objects.filter(connection=conn).count() == 12
    assert Order.objects.filter(connection=conn).count() == 12
    assert Customer.objects.filter(connection=conn).count() == 12
    sched.refresh_from_db()
    assert sched.last_success_at is not None and sched.failures_in_row == 0


def test_callback_rejects_wrong_state(client_staff, org, tn_sandbox):
    tn_sandbox()
    client_staff.get(f"/connectors/tiendanube/connect/?organization={org.pk}")
    r = client_staff.get("/connectors/tiendanube/oauth/callback/?code=abc&state=not-ours")
    assert r.status_code == 400 and r.json()["error"] == "oauth_invalid"
    assert not Connection.objects.filter(kind="tiendanube").exists()


def test_callback_rejects_missing_state_when_flow_started(client_staff, org, tn_sandbox):
    tn_sandbox()
    client_staff.get(f"/connectors/tiendanube/connect/?organization={org.pk}")
    r = client_staff.get("/connectors/tiendanube/oauth/callback/?code=abc")
    assert r.status_code == 400 and "missing the state" in r.json()["detail"]
    assert not Connection.objects.filter(kind="tiendanube").exists() and not PendingInstall.objects.exists()


def test_callback_rejects_state_from_another_session(client_staff, org, tn_sandbox):
    tn_sandbox()
    start = client_staff.get(f"/connectors/tiendanube/connect/?organization={org.pk}")
    state = start["Location"].split("state=")[1]
    r = Client().get(f"/connectors/tiendanube/oauth/callback/?code=abc&state={state}")
    assert r.status_code == 400
    assert not Connection.objects.filter(kind="tiendanube").exists()


def test_callback_rejects_reused_state(client_staff, org, tn_sandbox, django_capture_on_commit_callbacks):
    tn_sandbox()
    with django_capture_on_commit_callbacks(execute=False):
        first, parts = oauth_connect(client_staff, org)
    assert first.status_code == 200
    again = client_staff.get(f"{parts.path}?{parts.query}")
    assert again.status_code == 400 and "already used" in again.json()["detail"]


def test_callback_rejects_expired_state(client_staff, org, tn_sandbox, fake_clock):
    tn_sandbox()
    start = client_staff.get(f"/connectors/tiendanube/connect/?organization={org.pk}")
    redirect = requests.get(start["Location"], allow_redirects=False, timeout=5).headers["Location"]
    fake_clock.advance(601)
    r = client_staff.get("/connectors/tiendanube/oauth/callback/?" + redirect.split("?", 1)[1])
    assert r.status_code == 400 and "expired" in r.json()["detail"]
    assert OAuthState.objects.get().used_at is None


def test_install_without_our_state_becomes_pending_then_claimed(
    staff, org, tn_sandbox, django_capture_on_commit_callbacks
):
    sb = tn_sandbox(stores=1, records=3)
    redirect = requests.get(f"{sb.base_url}/apps/4242/authorize", allow_redirects=False, timeout=5).headers["Location"]
    r = Client().get("/connectors/tiendanube/oauth/callback/?" + redirect.split("?", 1)[1])
    assert r.status_code == 202 and r.json()["status"] == "pending"
    assert not Connection.objects.filter(kind="tiendanube").exists()
    pending = PendingInstall.objects.get(store_id="1001")
    c = Client()
    c.force_login(staff)
    with django_capture_on_commit_callbacks(execute=True):
        claim = c.post(
            f"/api/tiendanube/pending/{pending.pk}/claim/", {"organization": org.pk}, content_type="application/json"
        )
    assert claim.status_code == 200, claim.content
    conn = Connection.objects.get(kind="tiendanube", external_account_id="1001")
    assert conn.organization == org
    pending.refresh_from_db()
    assert pending.claimed_at is not None and pending.token_encrypted == ""
    from commerce.models import Product

    assert Product.objects.filter(connection=conn).count() == 3


def test_state_expiry_is_short_and_stored_hashed(client_staff, org, tn_sandbox):
    tn_sandbox()
    start = client_staff.get(f"/connectors/tiendanube/connect/?organization={org.pk}")
    state = start["Location"].split("state=")[1]
    row = OAuthState.objects.get()
    assert state not in row.state_hash
    assert row.expires_at - row.created_at == dt.timedelta(seconds=600)


@pytest.mark.parametrize("value", ["%C2%B2", "abc", "-1", "9" * 25])
def test_connect_with_a_bad_organization_is_a_4xx(client_staff, org, other_org, tn_sandbox, value):
    """ "²" passes str.isdigit() but not int(): it was a 500."""
    tn_sandbox()
    response = client_staff.get(f"/connectors/tiendanube/connect/?organization={value}")
    assert response.status_code in (400, 404) and not OAuthState.objects.exists()


def test_pending_install_admin_hides_other_organizations_claims(client_staff, org, other_org, other_staff):
    """Unclaimed installs with no organization chosen are everybody's to claim; once another organization
    chose or claimed one, its store and organization are that organization's business."""
    from django.utils import timezone

    PendingInstall.objects.create(store_id="5001")
    PendingInstall.objects.create(store_id="5002", organization=org)
    PendingInstall.objects.create(store_id="5003", organization=other_org)
    PendingInstall.objects.create(store_id="5004", organization=other_org, claimed_at=timezone.now())
    body = client_staff.get("/admin/tiendanube/pendinginstall/").content.decode()
    assert "5001" in body and "5002" in body
    assert "5003" not in body and "5004" not in body and other_org.name not in body
    theirs = PendingInstall.objects.get(store_id="5004")
    assert client_staff.get(f"/admin/tiendanube/pendinginstall/{theirs.pk}/change/").status_code in (302, 404)


def test_pending_install_chosen_by_another_organization_is_not_listed_or_claimable_by_api(staff, org, other_org):
    from rest_framework.test import APIClient

    open_one = PendingInstall.objects.create(store_id="6001")
    theirs = PendingInstall.objects.create(store_id="6002", organization=other_org)
    api = APIClient()
    api.force_authenticate(staff)
    listed = {row["store_id"] for row in api.get("/api/tiendanube/pending/").json()["pending"]}
    assert listed == {open_one.store_id}
    r = api.post(f"/api/tiendanube/pending/{theirs.pk}/claim/", {"organization": org.pk}, format="json")
    assert r.status_code == 404
    theirs.refresh_from_db()
    assert theirs.organization_id == other_org.pk and theirs.claimed_at is None


@pytest.mark.parametrize("answer", [[], ["access_token"], "ok", 7])
def test_a_token_endpoint_answering_something_other_than_an_object_is_a_clear_error(settings, answer):
    from connectors.sandbox.server import Response, SandboxApp, serve
    from connectors.tiendanube import oauth as services

    app = SandboxApp()

    @app.route("POST", "/apps/authorize/token")
    def token(req):
        return Response.json(answer, status=200)

    with serve(app) as root:
        settings.TIENDANUBE_TOKEN_URL = f"{root}/apps/authorize/token"
        with pytest.raises(services.OAuthUpstreamError, match="unexpected answer"):
            services.exchange_code("a-code")
