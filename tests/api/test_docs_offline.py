"""/api/docs/ works offline: Swagger UI's files come from drf-spectacular-sidecar, served by us, never a CDN."""

from __future__ import annotations

import re

from django.contrib.staticfiles import finders


def _references(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html) + re.findall(
        r"""url\s*[:=]\s*["']([^"']+)["']""", html
    )


def test_api_docs_reference_no_external_host(api):
    r = api.get("/api/docs/")
    assert r.status_code == 200
    html = r.content.decode()
    refs = _references(html)
    assert any("swagger-ui" in ref for ref in refs), refs  # the page does load Swagger UI...
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.I), "external URL in /api/docs/"
    for ref in refs:  # ...and every file it loads is ours
        assert ref.startswith("/"), ref
        assert not ref.startswith("//"), ref


def test_api_docs_static_files_exist(api):
    html = api.get("/api/docs/").content.decode()
    static = [ref for ref in _references(html) if ref.startswith("/static/")]
    assert static
    for ref in static:
        path = ref.removeprefix("/static/").split("?")[0]
        assert finders.find(path), f"{ref} is referenced but not shipped"
