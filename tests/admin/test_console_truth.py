"""Issue 18/21: progress that tells the truth, recovery that leads to the fix, a consistent and bounded dashboard."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from connectors.base import AuthError
from connectors.models import Connection
from core import clock
from sync import recovery, selectors, services
from sync.models import RunSchedule, SyncActivity, SyncQueue, SyncStatus
from sync.progress import progress_line, run_progress
from sync.templatetags.sh_console import sh_time

DASHBOARD = "admin:sync_dashboard"


def _progress_json(client, queue):
    return client.get(reverse("admin:sync_syncqueue_progress", args=[queue.pk])).json()


# --- Truthful progress -------------------------------------------------------------------------------------
def test_a_run_that_failed_on_fetch_is_not_a_green_100(staff_client, fake_conn, fake_kind):
    from core.errors import TransientError

    fake_kind.__init__(20)
    fake_kind.fail_pages[0] = TransientError("network error talking to fake at 127.0.0.1:9: connection refused")
    queue = services.sync_start(connection=fake_conn, resource="customers").queue
    queue.refresh_from_db()
    assert queue.state == "failed" and queue.total_count == 0
    p = run_progress(queue)
    assert p["percent"] == 0 and p["done_pct"] == 0 and p["failed_pct"] == 100
    assert p["label"] == "0% · failed on fetch"
    body = staff_client.get(reverse("admin:sync_syncqueue_change", args=[queue.pk])).content.decode()
    assert 'aria-valuenow="0"' in body and "failed on fetch" in body
    assert "connection refused" in body and "127.0.0.1:9" in body


def test_a_run_cancelled_half_way_is_not_100(staff_client, fake_conn):
    from sync.models import SyncQueueLine

    queue = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    # 2,000 of the 4,000 announced records fetched and done, the rest never fetched: then a cancel.
    SyncQueueLine.objects.bulk_create(
        SyncQueueLine(queue=queue, external_id=str(i), state="done", payload={}) for i in range(2000)
    )
    SyncQueue.objects.filter(pk=queue.pk).update(
        state="processing", total_count=2000, done_count=2000, expected_total=4000, started_at=clock.now()
    )
    services.queue_cancel(queue=queue)
    queue.refresh_from_db()
    p = run_progress(queue)
    assert queue.state == "cancelled" and p["percent"] == 50
    assert p["done_pct"] == 50 and p["cancelled_pct"] == 50 and p["cancelled"] == 2000
    assert p["label"] == "50% · cancelled · 2000 cancelled"
    body = staff_client.get(reverse(DASHBOARD)).content.decode()
    assert 'aria-valuenow="50"' in body


def test_admin_api_and_cli_read_the_same_progress(staff_client, staff, fake_conn):
    from tests.api.conftest import _client_for

    queue = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    SyncQueue.objects.filter(pk=queue.pk).update(
        state="processing", total_count=10, done_count=9, expected_total=100, draft_count=1
    )
    queue.refresh_from_db()
    admin_json = _progress_json(staff_client, queue)
    api_json = _client_for(staff).get(f"/api/queues/{queue.pk}").json()
    line = selectors.queue_progress_line(queue)  # what sync_run and sync_status print
    assert admin_json["percent"] == api_json["progress"]["percent"] == api_json["progress_percent"] == 9
    assert line.endswith(", 9%") and "9/100 done" in line


def test_active_and_waiting_time_are_apart(fake_conn, fake_clock):
    queue = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    created = queue.created_at
    SyncQueue.objects.filter(pk=queue.pk).update(
        state="done",
        is_active=False,
        started_at=created + dt.timedelta(seconds=40),
        finished_at=created + dt.timedelta(seconds=53),
        active_seconds=5.0,
        total_count=4,
        done_count=4,
        fetch_done=True,
    )
    queue.refresh_from_db()
    p = run_progress(queue)
    assert (p["active_seconds"], p["waiting_seconds"]) == (5.0, 48.0)
    assert (p["active"], p["waiting"]) == ("5s", "48s")
    assert "(active 5s, waiting 48s)" in progress_line(queue)


def test_the_engine_records_active_time(fake_conn, fake_kind):
    fake_kind.__init__(3)
    queue = services.sync_start(connection=fake_conn, resource="customers").queue
    queue.refresh_from_db()
    assert queue.state == "done" and queue.active_since is None and queue.active_seconds > 0


def test_sync_status_prints_the_shared_progress_line(fake_conn):
    queue = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    SyncQueue.objects.filter(pk=queue.pk).update(state="processing", total_count=4, done_count=1, draft_count=3)
    out = io.StringIO()
    call_command("sync_status", stdout=out)
    queue.refresh_from_db()
    assert progress_line(queue) in out.getvalue() and "25%" in out.getvalue()


# --- Recovery -------------------------------------------------------------------------------------------------
@pytest.fixture
def auth_failed_queue(fake_conn, fake_kind):
    fake_kind.__init__(5)
    fake_kind.fail_pages[0] = AuthError("HTTP 401 from GET /customers at 127.0.0.1:9: invalid token", status=401)
    queue = services.sync_start(connection=fake_conn, resource="customers").queue
    queue.refresh_from_db()
    fake_conn.refresh_from_db()
    assert fake_conn.needs_reauth and queue.state == "failed" and queue.action_required
    fake_kind.fail_pages.clear()
    return queue


def test_the_401_queue_page_advises_reconnect_not_retry(staff_client, auth_failed_queue, fake_conn):
    body = staff_client.get(reverse("admin:sync_syncqueue_change", args=[auth_failed_queue.pk])).content.decode()
    assert "retry the failed lines" not in body.lower()
    assert "reconnect" in body.lower() and 'data-testid="reconnect-link"' in body
    assert recovery.reconnect_url(fake_conn) in body
    # every queue page links to its connection
    assert reverse("admin:connectors_connection_change", args=[fake_conn.pk]) in body


def test_a_successful_test_connection_clears_needs_reauth_and_offers_to_resume(
    staff_client, staff, auth_failed_queue, fake_conn, monkeypatch
):
    from sync.registry import get_connector

    monkeypatch.setattr(type(get_connector("fake")), "test_connection", lambda self, conn: "OK: 5 customers")
    response = staff_client.post(
        reverse("admin:connectors_connection_changelist"),
        {"action": "test_connection", "_selected_action": [fake_conn.pk]},
        follow=True,
    )
    fake_conn.refresh_from_db()
    assert not fake_conn.needs_reauth and fake_conn.health == "ok"
    text = " ".join(str(m) for m in get_messages(response.wsgi_request))
    resume = reverse("admin:sync_syncqueue_action", args=[auth_failed_queue.pk, "retry"])
    assert "re-authorisation cleared" in text and resume in text
    assert SyncActivity.objects.filter(event="connection.reauthorized", connection=fake_conn, actor=staff).exists()
    # the red banner is gone from the dashboard, Sync now is back
    body = staff_client.get(reverse(DASHBOARD)).content.decode()
    assert f'data-testid="reauth-{fake_conn.pk}"' not in body
    assert f'data-testid="sync-now-{fake_conn.pk}-customers"' in body
    # and the offered resume works
    staff_client.post(resume)
    auth_failed_queue.refresh_from_db()
    assert auth_failed_queue.state == "done" and auth_failed_queue.done_count == 5


def test_a_failed_test_connection_keeps_the_flag(staff_client, auth_failed_queue, fake_conn, monkeypatch):
    from sync.registry import get_connector

    def refuse(self, conn):
        raise AuthError("HTTP 401 from GET /x at 127.0.0.1:9: nope", status=401)

    monkeypatch.setattr(type(get_connector("fake")), "test_connection", refuse)
    staff_client.post(
        reverse("admin:connectors_connection_changelist"),
        {"action": "test_connection", "_selected_action": [fake_conn.pk]},
    )
    fake_conn.refresh_from_db()
    assert fake_conn.needs_reauth


# --- Confirmations and bulk actions ----------------------------------------------------------------------------
def test_cancel_confirmation_cannot_be_misread(staff_client, fake_conn):
    queue = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    body = staff_client.get(reverse("admin:sync_syncqueue_action", args=[queue.pk, "cancel"])).content.decode()
    assert f"Cancel run #{queue.pk}?" in body
    assert 'value="Cancel run"' in body and ">Keep running<" in body
    assert "Yes, cancel" not in body and "No, take me back" not in body


def test_bulk_retry_skips_what_it_cannot_retry_and_says_so(staff_client, partial_queue, fake_conn, fake_kind):
    fake_kind.__init__(2)
    fake_kind.records[0]["email"] = ""
    other = Connection.objects.create(organization=fake_conn.organization, kind="fake", name="Second shop")
    fine = services.sync_start(connection=other, resource="customers").queue
    fine.refresh_from_db()
    assert fine.state == "partial"
    services.queue_force_done(queue=fine)  # now done: nothing to retry
    data = {"action": "queues_retry", "_selected_action": [partial_queue.pk, fine.pk]}
    confirm = staff_client.post(reverse("admin:sync_syncqueue_changelist"), data).content.decode()
    applies = re.search(r'data-testid="confirm-applies">(.*?)</ul>', confirm, re.S).group(1)
    skipped = re.search(r'data-testid="confirm-skipped">(.*?)</ul>', confirm, re.S).group(1)
    assert f"#{partial_queue.pk}" in applies and f"#{fine.pk}" not in applies
    assert f"#{fine.pk}" in skipped and "nothing failed" in skipped
    done = staff_client.post(reverse("admin:sync_syncqueue_changelist"), {**data, "post": "yes"}, follow=True)
    text = done.content.decode()
    assert "1 queue(s) retried" in text and f"Skipped 1 queue(s) this does not apply to: #{fine.pk}" in text


# --- The dashboard -----------------------------------------------------------------------------------------
def test_dashboard_states_agree_with_the_runs(staff_client, fake_conn, fake_kind, org, make_connection):
    fake_kind.__init__(3)
    services.sync_start(connection=fake_conn, resource="customers")  # done: 3 rows
    row = f'data-testid="resource-{fake_conn.pk}-customers" data-state="'
    body = staff_client.get(reverse(DASHBOARD)).content.decode()
    assert row + 'success"' in body

    queued = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    body = staff_client.get(reverse(DASHBOARD)).content.decode()
    assert row + 'queued"' in body and "Queued…" in body  # the button says so and is disabled
    SyncQueue.objects.filter(pk=queued.pk).update(state="processing")
    assert row + 'running"' in staff_client.get(reverse(DASHBOARD)).content.decode()
    services.queue_cancel(queue=queued)
    body = staff_client.get(reverse(DASHBOARD)).content.decode()
    assert row + 'cancelled"' in body and ">Cancelled<" in body


def test_dashboard_shows_last_run_count_and_total_rows(staff_client, fake_conn, fake_kind):
    fake_kind.__init__(250)
    services.sync_start(connection=fake_conn, resource="customers")
    fake_kind.records[0]["version"] = 10_000  # one changed record: the next incremental run moves 1
    services.sync_start(connection=fake_conn, resource="customers")
    body = staff_client.get(reverse(DASHBOARD)).content.decode()
    cell = re.search(
        rf'data-testid="resource-{fake_conn.pk}-customers".*?data-testid="last-run-count"[^>]*>(\d+)</span> / '
        r'<span data-testid="total-rows"[^>]*>(\d+)<',
        body,
        re.S,
    )
    assert cell and cell.groups() == ("1", "250")


def test_dashboard_shows_the_next_scheduled_run(staff_client, fake_conn):
    when = clock.now() + dt.timedelta(minutes=30)
    RunSchedule.objects.create(
        organization=fake_conn.organization, connection=fake_conn, resource="customers", next_sync_at=when
    )
    body = staff_client.get(reverse(DASHBOARD)).content.decode()
    cell = re.search(r'data-testid="next-run">(.*?)</td>', body, re.S).group(1)
    assert f'datetime="{when.isoformat()}"' in cell and "in 29" in cell or "in 30" in cell


def test_every_resource_of_every_kind_has_a_state(staff_client, org, make_connection):
    from sync.registry import KINDS, get_connector

    conns = [make_connection(org, kind=kind, name=f"{kind} shop") for kind in KINDS]
    body = staff_client.get(reverse(DASHBOARD)).content.decode()
    for conn in conns:
        for name in get_connector(conn.kind).resources:
            assert re.search(rf'data-testid="resource-{conn.pk}-{name}" data-state="\w+"', body), (conn.kind, name)


def test_every_button_has_its_own_accessible_name(staff_client, fake_conn):
    body = staff_client.get(reverse(DASHBOARD)).content.decode()
    assert 'aria-label="Sync now: Acme shop / customers"' in body


def test_dashboard_state_endpoint_changes_when_a_run_changes(staff_client, fake_conn, other_conn):
    url = reverse("admin:sync_dashboard_state") + f"?ids={fake_conn.pk},{other_conn.pk}"
    before = staff_client.get(url).json()["version"]
    queue = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    after = staff_client.get(url).json()["version"]
    assert before != after
    services.sync_start(connection=other_conn, resource="customers", enqueue=False)  # another organization's
    assert staff_client.get(url).json()["version"] == after
    assert queue.pk


def test_human_times_carry_the_exact_time():
    when = clock.now() - dt.timedelta(minutes=3)
    html = sh_time(when)
    assert html.startswith(f'<time datetime="{when.isoformat()}" title="') and "3 minutes ago</time>" in html


# --- Fleet scale ----------------------------------------------------------------------------------------------
def _fleet(org, n, start=0):
    conns = Connection.objects.bulk_create(
        Connection(organization=org, kind="fake", name=f"Store {i:05d}", external_account_id=str(10_000 + i))
        for i in range(start, start + n)
    )
    queues = SyncQueue.objects.bulk_create(
        SyncQueue(
            organization=org,
            connection=c,
            resource="customers",
            is_active=False,
            state="done",
            total_count=3,
            done_count=3,
            fetch_done=True,
        )
        for c in conns
    )
    SyncStatus.objects.bulk_create(
        SyncStatus(
            organization=org,
            connection=c,
            resource="customers",
            state="success",
            records_synced=3,
            last_queue=q,
            last_success_at=clock.now(),
        )
        for c, q in zip(conns, queues, strict=True)
    )
    return conns


def _queries(client, url, params=None):
    with CaptureQueriesContext(db_connection) as ctx:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return len(ctx), response.content.decode()


def test_dashboard_queries_are_constant_in_the_number_of_connections(staff_client, org, fake_kind):
    _fleet(org, 5)
    small, _ = _queries(staff_client, reverse(DASHBOARD))
    _fleet(org, 120, start=5)
    large, body = _queries(staff_client, reverse(DASHBOARD))
    assert small == large
    assert body.count('aria-label="Sync now: ') == 25  # one page
    assert "page 1 of 5" in body and "125 connections" in body


def test_dashboard_search_filters_and_pages(staff_client, org, fake_kind, fake_conn, make_connection):
    conns = _fleet(org, 40)
    Connection.objects.filter(pk=conns[3].pk).update(needs_reauth=True)
    SyncStatus.objects.filter(connection=conns[4]).update(state="failed", last_error="HTTP 500")
    SyncStatus.objects.filter(connection=conns[5]).update(last_success_at=clock.now() - dt.timedelta(days=3))
    url = reverse(DASHBOARD)

    def shown(params):
        return set(
            map(int, re.findall(r'data-testid="connection-(\d+)"', staff_client.get(url, params).content.decode()))
        )

    assert shown({"q": "Store 00007"}) == {conns[7].pk}
    assert shown({"q": "10012"}) == {conns[12].pk}  # the store id
    assert shown({"show": "needs_action"}) == {conns[3].pk}
    assert shown({"show": "failing"}) == {conns[4].pk}
    assert conns[5].pk in shown({"show": "stale"}) and conns[6].pk not in shown({"show": "stale"})
    assert shown({"kind": "woocommerce"}) == set()
    assert len(shown({"page": 2})) == 16 and shown({"page": 2}).isdisjoint(shown({}))


def test_queue_list_connection_filter_lists_no_connections(staff_client, org, fake_kind):
    _fleet(org, 30)
    url = reverse("admin:sync_syncqueue_changelist")
    small, body = _queries(staff_client, url)
    assert 'data-testid="connection-filter"' in body
    assert "Store 00029" not in body.split('id="changelist-filter"')[1]  # the filter offers a search box only
    _fleet(org, 60, start=30)
    large, _ = _queries(staff_client, url)
    assert small == large
    only = staff_client.get(url, {"conn": "Store 00031"}).content.decode()
    assert only.count('class="sh-progress"') == 1
