import pytest
from django.test import Client
from django_q.models import OrmQ

from customers.models import Customer, LoyaltyTier
from sync.models import SyncActivity, SyncQueue
from sync.tasks import run_queue


@pytest.fixture
def customers(org, other_org, make_connection):
    conn = make_connection(org, kind="woocommerce")
    other = make_connection(other_org, kind="woocommerce", name="other")
    for i, (first, last) in enumerate([("Ada", "Lovelace"), ("Alan", "Turing"), ("Grace", "Hopper")]):
        Customer.objects.create(
            organization=org,
            connection=conn,
            external_id=str(i),
            first_name=first,
            last_name=last,
            email=f"{first.lower()}@example.com",
        )
    Customer.objects.create(
        organization=other_org,
        connection=other,
        external_id="x",
        first_name="Eve",
        last_name="Other",
        email="eve@example.com",
    )


def _client(user):
    c = Client()
    c.force_login(user)
    return c


def _queued_refreshes():
    """Engine runs of loyalty_tiers handed to django-q2 (task args are the queue id only)."""
    tiers = set(SyncQueue.objects.filter(resource="loyalty_tiers").values_list("pk", flat=True))
    return [
        q.task
        for q in OrmQ.objects.all()
        if q.task.get("func") == "sync.tasks.run_queue" and q.task["args"][0] in tiers
    ]


@pytest.fixture
def configured(org, other_org):
    """Both organizations have a MuleSoft endpoint (so a MuleSoft connection each); nothing listens there."""
    from sync.services import setting_set

    for o in (org, other_org):
        setting_set(key="mulesoft_loyalty_sync_endpoint", value="http://127.0.0.1:9/api", organization=o)


def test_list_is_scoped_paginated_and_searchable(staff, customers):
    c = _client(staff)
    body = c.get("/api/customers").json()
    assert body["count"] == 3 and {r["first_name"] for r in body["results"]} == {"Ada", "Alan", "Grace"}
    assert [r["first_name"] for r in c.get("/api/customers?search=turing").json()["results"]] == ["Alan"]
    assert [r["first_name"] for r in c.get("/api/customers?search=grace@").json()["results"]] == ["Grace"]
    assert [r["first_name"] for r in c.get("/api/customers?search=ada lovelace").json()["results"]] == ["Ada"]
    assert c.get("/api/customers?page=2").status_code == 404  # 3 rows fit on page one (PAGE_SIZE 50)


def test_non_staff_refused(db, customers):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("plain", password="x")
    assert _client(user).get("/api/customers").status_code == 403


def test_list_enqueues_refresh_without_calling_mulesoft(staff, customers, endpoint, mulesoft, org):
    mulesoft.faults.hang_seconds = 30  # a hanging MuleSoft: the request must not even notice
    response = _client(staff).get("/api/customers")
    assert response.status_code == 200
    assert mulesoft.calls == 0  # the request never talked to MuleSoft
    queued = _queued_refreshes()
    assert len(queued) == 1 and SyncQueue.objects.get(pk=queued[0]["args"][0]).organization_id == org.pk
    assert "token" not in repr(queued[0]["args"])  # task args are ids, never secrets
    # The worker then runs it.
    mulesoft.faults.hang_seconds = 0
    assert run_queue(*queued[0]["args"]) == "done"
    assert LoyaltyTier.objects.filter(organization=org).count() == 3
    assert SyncActivity.objects.filter(organization=org, event="loyalty.refresh.succeeded").count() == 1


def test_list_opened_often_refreshes_once(staff, customers, org, configured, fake_clock):
    c = _client(staff)
    for _ in range(4):
        assert c.get("/api/customers").status_code == 200
    assert len(_queued_refreshes()) == 1
    run_queue(_queued_refreshes()[0]["args"][0])  # a worker ran it
    fake_clock.advance(3601)
    c.get("/api/customers")
    assert len(_queued_refreshes()) == 2


def test_only_own_organizations_are_refreshed(staff, other_staff, customers, org, other_org, configured):
    _client(staff).get("/api/customers")
    assert [SyncQueue.objects.get(pk=t["args"][0]).organization_id for t in _queued_refreshes()] == [org.pk]


def test_an_organization_without_mulesoft_gets_no_run(staff, customers, org):
    assert _client(staff).get("/api/customers").status_code == 200
    assert _queued_refreshes() == [] and not SyncQueue.objects.exists()


def test_enqueue_failure_does_not_break_the_response(staff, customers, configured, monkeypatch):
    from sync import refresh as services

    calls = []

    def boom(*a, **k):
        calls.append(a)
        raise RuntimeError("broker down")

    monkeypatch.setattr(services, "sync_request", boom)
    assert _client(staff).get("/api/customers").status_code == 200
    assert len(calls) == 1  # the enqueue really ran (and failed) after the response


@pytest.fixture
def request_signals():
    """Django's request_started / request_finished, without Django's own close_old_connections receiver (it
    would close the test's transaction on PostgreSQL); the test client disconnects it the same way."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield request_started, request_finished
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_refresh_is_enqueued_by_request_finished_not_by_the_view(staff, customers, org, configured, request_signals):
    """The view only notes the organizations; the enqueue happens on Django's public ``request_finished``
    signal, which the server sends after the response went out (never inside the view's time)."""
    from rest_framework.test import APIRequestFactory, force_authenticate

    from customers.views import CustomerListView

    request_started, request_finished = request_signals

    request_started.send(sender=None)
    request = APIRequestFactory().get("/api/customers")
    force_authenticate(request, user=staff)
    response = CustomerListView.as_view()(request)
    assert response.status_code == 200
    assert _queued_refreshes() == []  # nothing yet: the response has not been sent
    request_finished.send(sender=None)
    assert [SyncQueue.objects.get(pk=t["args"][0]).organization_id for t in _queued_refreshes()] == [org.pk]
    request_finished.send(sender=None)  # a second close of the same response enqueues nothing more
    assert len(_queued_refreshes()) == 1


def test_a_request_that_was_never_finished_does_not_leak_into_the_next(
    staff, customers, org, configured, request_signals
):
    from customers.services import loyalty_refresh_after_response

    request_started, request_finished = request_signals

    loyalty_refresh_after_response([org.pk])  # e.g. a request whose response was never closed
    request_started.send(sender=None)  # the next request on this thread starts clean
    request_finished.send(sender=None)
    assert _queued_refreshes() == []
