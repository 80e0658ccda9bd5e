"""Playwright driving Debian's Chromium against pytest-django's live_server.

Chromium comes from the OS (``.ci/system-deps`` installs it); Playwright's own browser download is not
reachable here. Without Chromium the tests skip on a laptop but FAIL in CI (CI=true), so a broken CI
image can never turn the browser suite green by skipping it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sync import registry
from tests import fakes

CHROMIUM = os.environ.get("SYNCHUB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Refreshing docs/screenshots/ is opt-in (SYNCHUB_SCREENSHOTS=1), so a test run leaves the tree clean;
# otherwise each screenshot goes to the test's tmp_path (still taken: the page must render full-size).
SCREENSHOTS_ENV = "SYNCHUB_SCREENSHOTS"


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        message = f"Chromium not found at {CHROMIUM}; run .ci/system-deps (apt-get install chromium)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop in this thread; the ORM calls the tests make between
    # browser steps are plain synchronous code, so tell Django not to refuse them.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    pw = sync_playwright().start()
    try:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()
    finally:
        pw.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    from playwright.sync_api import expect

    # Assertions wait as long as actions: a loaded CI machine (two database legs, 2 cores) may need several
    # 1-second polls of the live console before a change shows; 5 s (Playwright's default) was flaky there.
    expect.set_options(timeout=15_000)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def login(page, live_server):
    def do(username: str, password: str):
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_selector("#site-name")
        return page

    return do


def screenshots_dir(tmp_path: Path) -> Path:
    """docs/screenshots/ when SYNCHUB_SCREENSHOTS is set to 1/true/yes, else the test's own tmp_path."""
    if os.environ.get(SCREENSHOTS_ENV, "").lower() in ("1", "true", "yes"):
        return SCREENSHOTS
    return tmp_path


@pytest.fixture
def screenshot(page, tmp_path):
    def shoot(name: str) -> Path:
        folder = screenshots_dir(tmp_path)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{name}.png"
        page.screenshot(path=str(target), full_page=True)
        return target

    return shoot


# The fake connector kind, as in tests/sync/conftest.py.
@pytest.fixture
def fake_kind(monkeypatch):
    monkeypatch.setitem(registry.KINDS, "fake", "tests.fakes.connector")
    registry.get_connector.cache_clear()
    fakes.UPSTREAM.__init__(0)
    yield fakes.UPSTREAM
    registry.get_connector.cache_clear()


@pytest.fixture
def fake_conn(org, make_connection, fake_kind):
    return make_connection(org, kind="fake", name="Acme web shop", credentials={"token": "s3cr3t-token-value"})
