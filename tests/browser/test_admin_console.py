"""Staff operate syncs from the admin in a real browser: dashboard, live progress, retry, force-done, tenancy."""

from __future__ import annotations

import re
import threading

import pytest
from django.db import connection as db_connection
from playwright.sync_api import expect

from sync import engine, services
from sync.models import SyncActivity, SyncQueue
from tests import fakes

pytestmark = pytest.mark.browser


def test_sync_now_from_the_dashboard_reaches_100_percent(
    live_server, login, page, screenshot, staff, fake_conn, fake_kind, make_connection, org
):
    fake_kind.__init__(25)
    reauth = make_connection(
        org,
        kind="fake",
        name="Acme POS (token expired)",
        needs_reauth=True,
        last_error="401 Unauthorized: token expired",
    )
    login("alice", "pw-alice")
    page.click("[data-testid=dashboard-link]")
    row = page.locator(f"[data-testid=resource-{fake_conn.pk}-customers]")
    expect(row).to_contain_text("Never synced")
    expect(page.locator(f"[data-testid=reauth-{reauth.pk}]")).to_contain_text("needs re-authorisation")
    row.locator("button[type=submit]").click()  # POST -> sync_start(origin manual, actor=alice)
    expect(page.locator(".messagelist")).to_contain_text("started")
    expect(row.locator("[data-testid=progress-label]")).to_have_text("100%")
    expect(row).to_contain_text("Success")
    expect(row).to_contain_text("25")
    queue = SyncQueue.objects.get(connection=fake_conn)
    assert queue.created_by == staff and queue.origin == "manual" and queue.done_count == 25
    screenshot("dashboard")


def test_queue_page_progress_bar_updates_itself(
    live_server, login, page, screenshot, staff, fake_conn, fake_kind, monkeypatch
):
    fake_kind.__init__(30)  # three pages of ten
    gate = threading.Event()
    original = fakes.FakeCustomers.fetch_page

    def gated_fetch(self, ctx):
        if int(ctx.token or 0) >= 1:
            gate.wait(timeout=30)  # hold the run after page one so the browser sees it mid-way
        return original(self, ctx)

    monkeypatch.setattr(fakes.FakeCustomers, "fetch_page", gated_fetch)
    queue = services.sync_start(connection=fake_conn, resource="customers", actor=staff, enqueue=False).queue

    login("alice", "pw-alice")
    page.goto(f"{live_server.url}/admin/sync/syncqueue/{queue.pk}/change/")
    label = page.locator("[data-testid=queue-page] [data-testid=progress-label]")
    expect(label).to_have_text(re.compile(r"^0% · (queued|running)$"))

    def work():  # a worker, as qcluster would run it; its own DB connection
        try:
            engine.run_queue(queue.pk)
        finally:
            db_connection.close()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        expect(label).to_have_text("33% · running")  # page one (10 of the 30 announced) done, the poll saw it
        expect(page.locator("[data-testid=count-done]")).to_have_text("10")
        expect(page.locator("[data-testid=force-done]")).to_be_hidden()  # refused while processing
        screenshot("queue-running")
    finally:
        gate.set()
        worker.join(timeout=30)
    expect(label).to_have_text("100%")
    expect(page.locator("[data-testid=count-done]")).to_have_text("30")
    expect(page.locator("[data-queue-field$=':state']")).to_have_text("done")
    queue.refresh_from_db()
    assert queue.state == "done" and queue.done_count == 30


def _partial_queue(fake_conn, fake_kind):
    fake_kind.__init__(12)
    for i in (2, 5, 9):
        fake_kind.records[i]["email"] = ""
    queue = services.sync_start(connection=fake_conn, resource="customers").queue
    queue.refresh_from_db()
    assert queue.state == "partial" and queue.action_required
    return queue


def test_retry_and_force_done_a_queue(live_server, login, page, screenshot, staff, fake_conn, fake_kind):
    queue = _partial_queue(fake_conn, fake_kind)
    login("alice", "pw-alice")

    # Retry from the changelist: select, choose the bulk action, confirm.
    page.goto(f"{live_server.url}/admin/sync/syncqueue/")
    expect(page.locator("#result_list")).to_contain_text("action required")
    page.check(f"input[name=_selected_action][value='{queue.pk}']")
    page.select_option("select[name=action]", "queues_retry")
    page.click("button[name=index]")
    expect(page.locator("[data-testid=confirm-page]")).to_contain_text(f"Queue #{queue.pk}")
    page.click("[data-testid=confirm]")
    expect(page.locator(".messagelist")).to_contain_text("1 queue(s) retried")
    retry = SyncActivity.objects.get(queue=queue, event="queue.retry")
    assert retry.actor == staff
    queue.refresh_from_db()
    assert queue.state == "partial"  # the three bad records are still bad upstream

    # The queue page: red banner, failed lines with their error, the timeline.
    page.goto(f"{live_server.url}/admin/sync/syncqueue/{queue.pk}/change/")
    expect(page.locator("[data-testid=action-required-banner]")).to_be_visible()
    page.click("[data-testid=lines-filter-failed]")
    expect(page.locator("[data-testid=lines] tbody tr")).to_have_count(3)
    expect(page.locator("[data-testid=lines]")).to_contain_text("email is required")
    expect(page.locator("[data-testid=timeline]")).to_contain_text("queue.retry")
    page.goto(f"{live_server.url}/admin/sync/syncqueue/{queue.pk}/change/")
    screenshot("queue")

    # Force done from the queue page, confirmed.
    page.click("[data-testid=force-done]")
    page.click("[data-testid=confirm]")
    expect(page.locator(".messagelist")).to_contain_text("1 queue(s) forced done")
    expect(page.locator("[data-testid=action-required-banner]")).to_have_count(0)
    # 9 of 12 synced, 3 skipped by the force-done: the bar says so instead of 100%
    expect(page.locator("[data-testid=queue-page] [data-testid=progress-label]")).to_have_text("75% · 3 cancelled")
    expect(page.locator("[data-testid=timeline]")).to_contain_text(re.compile(r"queue\.force_done.*alice", re.S))
    queue.refresh_from_db()
    assert queue.state == "done" and not queue.action_required
    assert SyncActivity.objects.get(queue=queue, event="queue.force_done").actor == staff


def test_staff_of_another_organization_sees_none_of_it(
    live_server, login, page, staff, other_staff, fake_conn, fake_kind
):
    queue = _partial_queue(fake_conn, fake_kind)
    login("bob", "pw-bob")
    page.goto(f"{live_server.url}/admin/sync-dashboard/")
    expect(page.locator("[data-testid=no-connections]")).to_be_visible()
    expect(page.locator("#content")).not_to_contain_text("Acme")
    page.goto(f"{live_server.url}/admin/sync/syncqueue/")
    expect(page.locator("#content")).not_to_contain_text("Acme")
    expect(page.locator("#result_list")).to_have_count(0)
    response = page.goto(f"{live_server.url}/admin/sync/syncqueue/{queue.pk}/change/")
    assert response.status == 404
    response = page.goto(f"{live_server.url}/admin/sync/syncqueue/{queue.pk}/progress/")
    assert response.status == 404
    page.goto(f"{live_server.url}/admin/connectors/connection/")
    expect(page.locator("#content")).not_to_contain_text("Acme")


def test_an_erased_customer_reads_as_erased_at_desktop_and_phone_widths(
    live_server, login, page, screenshot, staff, fake_conn, org
):
    """A customer erased on request is a blank row: the customer list says so in its own column, on a
    desktop and on a phone, and its page is titled by its id."""
    from customers.models import Customer
    from sync.records import ERASED

    Customer.objects.create(organization=org, connection=fake_conn, external_id="77", sync_hash=ERASED)
    Customer.objects.create(organization=org, connection=fake_conn, external_id="78", first_name="Ana")
    login("alice", "pw-alice")
    page.goto(f"{live_server.url}/admin/customers/customer/")
    erased_row = page.locator("#result_list tbody tr", has_text="77")
    expect(erased_row.locator("td.field-state")).to_have_text("erased on request")
    expect(erased_row.locator("td.field-state")).to_be_in_viewport()
    expect(page.locator("#result_list tbody tr", has_text="Ana").locator("td.field-state")).to_have_text("live")
    screenshot("customers-erased-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(erased_row.locator("td.field-state")).to_be_in_viewport()  # next to the id, not scrolled away
    screenshot("customers-erased-phone")
    erased_row.locator("th a, td a").first.click()
    expect(page.locator("#content h2, #content h1").first).to_be_visible()
    expect(page.locator("#content")).to_contain_text("customer 77")
