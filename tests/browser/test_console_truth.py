"""Issue 18 (and the fleet page of 21) in a real browser, at 1280 and 390 px: truthful bars, recovery that
leads to the fix, a dashboard that agrees with the runs and refreshes itself, layout and accessibility."""

from __future__ import annotations

import re
import threading

import pytest
from django.db import connection as db_connection
from playwright.sync_api import expect

from connectors.base import AuthError
from core.errors import TransientError
from sync import engine, services
from sync.models import SyncQueue
from tests import fakes

pytestmark = pytest.mark.browser
WIDTHS = [1280, 390]

# WCAG relative luminance contrast of every badge (text vs its own background), computed in the page.
CONTRAST_JS = """() => {
  function rgb(s) { return s.match(/[\\d.]+/g).slice(0, 3).map(Number); }
  function lum(c) { return c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); })
                     .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0); }
  return Array.from(document.querySelectorAll('.sh-badge')).map(el => {
    const cs = getComputedStyle(el);
    const a = lum(rgb(cs.color)), b = lum(rgb(cs.backgroundColor));
    return {text: el.textContent, size: parseFloat(cs.fontSize), ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)};
  });
}"""


def no_horizontal_scroll(page) -> bool:
    wide = page.evaluate(
        """() => Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right >
           window.innerWidth + 1 && !e.closest('.results')).slice(0, 5).map(e => e.tagName + '.' + e.className)"""
    )
    fits = page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert fits, wide
    return fits


def assert_badges_readable(page):
    badges = page.evaluate(CONTRAST_JS)
    assert badges, "no badge on the page"
    for b in badges:
        assert b["ratio"] >= 4.5, b


@pytest.fixture
def sized(page):
    def size(width: int):
        page.set_viewport_size({"width": width, "height": 900})
        return page

    return size


@pytest.fixture
def fleet(fake_conn, fake_kind, org, make_connection):
    """A synced connection, one whose fetch failed on a dead port, one needing re-authorisation."""
    fake_kind.__init__(6)
    services.sync_start(connection=fake_conn, resource="customers")
    dead = make_connection(org, kind="fake", name="Acme outlet (dead port)")
    fake_kind.fail_pages[0] = TransientError("network error talking to fake at 127.0.0.1:9: connection refused")
    failed = services.sync_start(connection=dead, resource="customers").queue
    fake_kind.fail_pages.clear()
    reauth = make_connection(org, kind="fake", name="Acme POS (token expired)")
    fake_kind.fail_pages[0] = AuthError("HTTP 401 from GET /customers at 127.0.0.1:9: invalid token", status=401)
    auth_failed = services.sync_start(connection=reauth, resource="customers").queue
    fake_kind.fail_pages.clear()
    return {"ok": fake_conn, "dead": dead, "failed": failed, "reauth": reauth, "auth_failed": auth_failed}


@pytest.mark.parametrize("width", WIDTHS)
def test_dashboard_tells_the_truth_and_fits(live_server, login, page, sized, screenshot, staff, fleet, width):
    sized(width)
    login("alice", "pw-alice")
    page.goto(f"{live_server.url}/admin/sync-dashboard/")
    ok, dead, reauth = fleet["ok"], fleet["dead"], fleet["reauth"]

    good = page.locator(f"[data-testid=resource-{ok.pk}-customers]")
    expect(good.locator("[data-testid=state]")).to_have_text("Success")
    expect(good.locator("[data-testid=last-run-count]")).to_have_text("6")
    expect(good.locator("[data-testid=total-rows]")).to_have_text("6")
    expect(good.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    # the failed fetch: 0 %, red, words say so (not a green 100 %)
    bad = page.locator(f"[data-testid=resource-{dead.pk}-customers]")
    expect(bad.locator("[data-testid=state]")).to_have_text("Failed")
    bar = bad.get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuenow", "0")
    expect(bad.locator("[data-testid=progress-label]")).to_have_text("0% · failed on fetch")
    assert bar.locator(".sh-done").evaluate("e => e.style.width") == "0%"
    assert bar.locator(".sh-failed").evaluate("e => e.style.width") == "100%"
    expect(bad).to_contain_text("127.0.0.1:9")
    # needs reauth: red banner, a reconnect link, no Sync now
    banner = page.locator(f"[data-testid=reauth-{reauth.pk}]")
    expect(banner).to_be_visible()
    expect(banner.get_by_role("link", name=f"Reconnect {reauth.name}")).to_be_visible()
    expect(page.locator(f"[data-testid=sync-now-{reauth.pk}-customers]")).to_have_count(0)
    # one accessible name per button; human times with the exact time on hover
    expect(page.get_by_role("button", name=f"Sync now: {ok.name} / customers")).to_be_visible()
    stamp = good.locator("time").first
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", stamp.get_attribute("title"))
    assert stamp.get_attribute("datetime")
    assert page.locator("[aria-live]").count() >= 1
    assert_badges_readable(page)
    assert no_horizontal_scroll(page), page.evaluate("document.documentElement.scrollWidth")
    if width == 1280:
        screenshot("dashboard")
    else:
        screenshot("dashboard-390")


def test_dashboard_refreshes_itself_while_a_run_changes(
    live_server, login, page, sized, staff, fake_conn, fake_kind, monkeypatch
):
    sized(1280)
    fake_kind.__init__(30)
    gate = threading.Event()
    original = fakes.FakeCustomers.fetch_page

    def gated(self, ctx):
        if int(ctx.token or 0) >= 1:
            gate.wait(timeout=30)
        return original(self, ctx)

    monkeypatch.setattr(fakes.FakeCustomers, "fetch_page", gated)
    login("alice", "pw-alice")
    page.goto(f"{live_server.url}/admin/sync-dashboard/")
    row = page.locator(f"[data-testid=resource-{fake_conn.pk}-customers]")
    expect(row.locator("[data-testid=state]")).to_have_text("Never synced")
    queue = services.sync_start(connection=fake_conn, resource="customers", actor=staff, enqueue=False).queue
    expect(row.locator("[data-testid=state]")).to_have_text("Queued")  # no reload: the page saw it
    expect(row.locator("button[type=submit]")).to_be_disabled()

    def work():
        try:
            engine.run_queue(queue.pk)
        finally:
            db_connection.close()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        expect(row.locator("[data-testid=state]")).to_have_text("Running")
        expect(row.locator("[data-testid=progress-label]")).to_have_text("33% · running")
    finally:
        gate.set()
        worker.join(timeout=30)
    expect(row.locator("[data-testid=state]")).to_have_text("Success")
    expect(row.locator("[data-testid=last-run-count]")).to_have_text("30")
    expect(row.locator("button[type=submit]")).to_be_enabled()


@pytest.mark.parametrize("width", WIDTHS)
def test_queue_page_running_refreshes_lines_and_fits(
    live_server, login, page, sized, screenshot, staff, fake_conn, fake_kind, monkeypatch, width
):
    sized(width)
    fake_kind.__init__(30)
    gate = threading.Event()
    original = fakes.FakeCustomers.fetch_page

    def gated(self, ctx):
        if int(ctx.token or 0) >= 1:
            gate.wait(timeout=30)
        return original(self, ctx)

    monkeypatch.setattr(fakes.FakeCustomers, "fetch_page", gated)
    queue = services.sync_start(connection=fake_conn, resource="customers", actor=staff, enqueue=False).queue
    login("alice", "pw-alice")
    page.goto(f"{live_server.url}/admin/sync/syncqueue/{queue.pk}/change/")
    expect(page.locator("[data-testid=lines]")).to_contain_text("No lines")
    expect(page.locator("[data-testid=pages-fetched]")).to_have_text("0")

    def work():
        try:
            engine.run_queue(queue.pk)
        finally:
            db_connection.close()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        bar = page.locator("[data-testid=queue-page] [role=progressbar]")
        expect(bar).to_have_attribute("aria-valuenow", "33")
        expect(page.locator("[data-testid=pages-fetched]")).to_have_text("1")
        expect(page.locator("[data-testid=lines] tbody tr")).to_have_count(10)  # the table refreshed itself
        expect(page.locator("[data-testid=timeline]")).to_contain_text("queue.started")
        expect(page.get_by_role("link", name=fake_conn.name).first).to_be_visible()
        assert no_horizontal_scroll(page)
        if width == 1280:
            screenshot("queue-running")
    finally:
        gate.set()
        worker.join(timeout=30)
    expect(page.locator("[data-testid=progress-label]")).to_have_text("100%")
    expect(page.locator("[data-testid=timeline]")).to_contain_text("queue.done")
    expect(page.locator("[data-testid=lines] tbody tr")).to_have_count(30)
    expect(page.locator("[data-testid=active-time]")).not_to_have_text("-")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_401_queue_leads_to_reconnect_and_resume(
    live_server, login, page, sized, screenshot, staff, fleet, monkeypatch, width
):
    sized(width)
    queue, reauth = fleet["auth_failed"], fleet["reauth"]
    login("alice", "pw-alice")
    page.goto(f"{live_server.url}/admin/sync/syncqueue/{queue.pk}/change/")
    banner = page.locator("[data-testid=action-required-banner]")
    expect(banner).to_contain_text("Authentication failed")
    expect(banner).to_contain_text("reconnect")
    expect(banner).not_to_contain_text("retry the failed lines")
    expect(page.locator("[data-testid=reconnect-link]")).to_have_text(f"Reconnect {reauth.name}")
    expect(page.locator("[data-testid=connection-link]")).to_have_attribute(
        "href", f"/admin/connectors/connection/{reauth.pk}/change/"
    )
    expect(page.locator("[data-testid=progress-label]")).to_have_text("0% · failed on fetch")
    assert_badges_readable(page) if page.locator(".sh-badge").count() else None
    assert no_horizontal_scroll(page)
    if width == 1280:
        screenshot("queue-failed")
        return
    # Test connection succeeds: the flag and the banner go, and the stopped run is offered for resume.
    from sync.registry import get_connector

    monkeypatch.setattr(type(get_connector("fake")), "test_connection", lambda self, conn: "OK: 1 customer")
    page.goto(f"{live_server.url}/admin/connectors/connection/")
    page.check(f"input[name=_selected_action][value='{reauth.pk}']")
    page.select_option("select[name=action]", "test_connection")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("re-authorisation cleared")
    page.click("[data-testid=resume-run]")
    expect(page.locator("h1")).to_have_text(f"Retry the failed lines of run #{queue.pk}?")
    page.click("[data-testid=confirm]")
    expect(page.locator(".messagelist")).to_contain_text("1 queue(s) retried")
    queue.refresh_from_db()
    assert queue.state == "done"
    page.goto(f"{live_server.url}/admin/sync-dashboard/")
    expect(page.locator(f"[data-testid=reauth-{reauth.pk}]")).to_have_count(0)


@pytest.mark.parametrize("width", WIDTHS)
def test_queue_list_key_columns_fit(live_server, login, page, sized, staff, fleet, width):
    sized(width)
    login("alice", "pw-alice")
    page.goto(f"{live_server.url}/admin/sync/syncqueue/")
    expect(page.locator("#result_list")).to_be_visible()
    assert no_horizontal_scroll(page), page.evaluate("document.documentElement.scrollWidth")
    if width == 1280:
        for column in ("column-progress", "column-origin", "column-duration", "column-action_marker"):
            box = page.locator(f"#result_list th.{column}").bounding_box()
            assert box and box["x"] + box["width"] <= 1280, (column, box)
    expect(page.locator("[data-testid=connection-filter]")).to_have_count(1)
    assert_badges_readable(page)


def test_cancel_confirmation_reads_one_way(live_server, login, page, sized, staff, fake_conn):
    sized(390)
    queue = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    login("alice", "pw-alice")
    page.goto(f"{live_server.url}/admin/sync/syncqueue/{queue.pk}/change/")
    page.get_by_role("link", name="Cancel run").click()
    expect(page.locator("h1")).to_have_text(f"Cancel run #{queue.pk}?")
    expect(page.get_by_role("link", name="Keep running")).to_be_visible()
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator("[data-testid=progress-label]")).to_contain_text("cancelled")
    assert SyncQueue.objects.get(pk=queue.pk).state == "cancelled"
