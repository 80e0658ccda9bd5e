"""Browser tests write docs/screenshots/ only when asked (SYNCHUB_SCREENSHOTS=1): a plain test run must
leave the tree clean. No browser needed."""

from __future__ import annotations

import pytest

from tests.browser.conftest import SCREENSHOTS, SCREENSHOTS_ENV, screenshots_dir


@pytest.mark.parametrize("value", [None, "", "0", "false"])
def test_screenshots_go_to_the_tests_tmp_dir_by_default(monkeypatch, tmp_path, value):
    if value is None:
        monkeypatch.delenv(SCREENSHOTS_ENV, raising=False)
    else:
        monkeypatch.setenv(SCREENSHOTS_ENV, value)
    assert screenshots_dir(tmp_path) == tmp_path


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_screenshots_refresh_the_docs_when_asked(monkeypatch, tmp_path, value):
    monkeypatch.setenv(SCREENSHOTS_ENV, value)
    assert screenshots_dir(tmp_path) == SCREENSHOTS
    assert SCREENSHOTS.parts[-2:] == ("docs", "screenshots")
