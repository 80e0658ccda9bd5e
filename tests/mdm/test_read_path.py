import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from connectors.mdm import readcache, selectors, services
from connectors.mdm.readcache import ItemsCache, ItemsUnavailable

from .conftest import BUCKET, KEY

REPO = Path(__file__).resolve().parents[2]


def test_loads_from_s3_on_first_use_then_serves_from_memory(s3, mdm, fake_clock, monkeypatch):
    services.mdm_export_run()
    cache = ItemsCache()
    assert selectors.ineligible_items_cache_status(items_cache=cache)["loaded"] is False
    items, snap = selectors.ineligible_items(items_cache=cache)
    assert len(items) == 25 and snap.etag and not snap.stale
    from connectors.mdm import storage

    def no_s3(*a, **k):
        raise AssertionError("S3 read although the copy is current")

    monkeypatch.setattr(storage, "get_json", no_s3)
    fake_clock.advance(90)
    items, _ = selectors.ineligible_items(sku="SKU-00003,SKU-00007", items_cache=cache)
    assert [i["sku"] for i in items] == ["SKU-00003", "SKU-00007"]
    status = selectors.ineligible_items_cache_status(items_cache=cache)
    assert status["item_count"] == 25 and status["age_seconds"] == 90.0 and status["up_to_date"]


def test_successful_export_invalidates_the_copy(s3, mdm, fake_clock):
    services.mdm_export_run()
    cache = ItemsCache()
    assert selectors.ineligible_items(items_cache=cache)[1].count == 25
    mdm.items = mdm.items[:4]
    fake_clock.advance(1)  # a later run: items it no longer sees leave the export
    services.mdm_export_run()
    assert selectors.ineligible_items(items_cache=cache)[1].count == 4


def test_failed_export_keeps_the_copy(s3, mdm, fake_clock):
    services.mdm_export_run()
    cache = ItemsCache()
    snap = selectors.ineligible_items(items_cache=cache)[1]
    mdm.faults.error_status = 500
    services.mdm_export_run()
    assert selectors.ineligible_items(items_cache=cache)[1] is snap  # not even re-read


def test_stale_copy_served_when_s3_is_down(s3, mdm, dead_s3, fake_clock):
    services.mdm_export_run()
    cache = ItemsCache()
    selectors.ineligible_items(items_cache=cache)
    mdm.items = mdm.items[:2]
    services.mdm_export_run()  # new version announced...
    dead_s3()  # ...but S3 is gone before this process reloads
    items, snap = selectors.ineligible_items(items_cache=cache)
    assert len(items) == 25 and snap.stale and "unreachable" in snap.last_error
    assert selectors.ineligible_items_cache_status(items_cache=cache)["stale"] is True


def test_no_copy_and_s3_down_is_unavailable(s3, dead_s3, fake_clock):
    dead_s3()
    with pytest.raises(ItemsUnavailable):
        ItemsCache().get()


def test_items_api_filters_by_sku_and_is_staff_only(s3, mdm, staff, fake_clock):
    services.mdm_export_run()
    c = Client()
    c.force_login(staff)
    body = c.get("/api/mdm/items?sku=SKU-00010").json()
    assert body["count"] == 1 and body["items"][0]["sku"] == "SKU-00010" and body["total"] == 25
    assert c.get("/api/mdm/items/cache").json()["item_count"] == 25
    assert Client().get("/api/mdm/items").status_code in (401, 403)


def test_items_api_503_before_any_export(s3, staff):
    c = Client()
    c.force_login(staff)
    assert c.get("/api/mdm/items").status_code == 503


def test_preload_hook_loads_the_cache(s3, mdm, fake_clock):
    from connectors.mdm import tasks

    services.mdm_export_run()
    readcache.ITEMS_CACHE.clear()
    tasks.preload_items_cache(proc_name="Process-1")
    assert readcache.ITEMS_CACHE.peek().count == 25


SCRIPT = """
import sys, django, json
django.setup()
from connectors.mdm.selectors import ineligible_items
for line in sys.stdin:
    items, snap = ineligible_items()
    print(json.dumps({"count": len(items), "version": snap.version}), flush=True)
"""


def test_a_second_process_sees_the_invalidation(s3, mdm, moto_server, settings, tmp_path, fake_clock):
    """A real second Python process holds its own in-memory copy; our export must reach it through the
    shared cache. (The test DB is in-memory SQLite, so both processes share a file cache here: the mechanism
    is the same Django cache API that production points at the database cache.)"""
    cache_dir = tmp_path / "cache"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(cache_dir)}
    }
    services.mdm_export_run()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "CACHE_URL": f"filecache://{cache_dir}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        "MDM_S3_ENDPOINT_URL": moto_server,
        "MDM_S3_ACCESS_KEY_ID": "testing",
        "MDM_S3_SECRET_ACCESS_KEY": "testing",
        "MDM_S3_BUCKET": BUCKET,
        "MDM_S3_KEY": KEY,
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO,
        env=env,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        proc.stdin.write("read\n")
        proc.stdin.flush()
        first = json.loads(proc.stdout.readline() or "{}")
        assert first["count"] == 25, proc.stderr.read() if not first else first
        mdm.items = mdm.items[:5]
        fake_clock.advance(1)
        run = services.mdm_export_run()
        proc.stdin.write("read\n")
        proc.stdin.flush()
        second = json.loads(proc.stdout.readline())
        assert second == {"count": 5, "version": f"{run.pk}:{run.etag}"}
    finally:
        proc.stdin.close()
        proc.wait(timeout=20)


def test_items_api_is_503_when_the_s3_client_cannot_even_be_built(staff, monkeypatch):
    """A botocore error while building the client (no region, a failing credential lookup) is an S3 error:
    503 items_unavailable, never a 500 from a raw botocore exception."""
    from botocore.exceptions import NoRegionError

    from connectors.mdm import storage

    def no_region(key):
        raise NoRegionError()

    monkeypatch.setattr(storage, "_cached_client", no_region)
    readcache.ITEMS_CACHE.clear()
    c = Client(raise_request_exception=False)
    c.force_login(staff)
    r = c.get("/api/mdm/items")
    assert r.status_code == 503 and r.json()["error"]["code"] == "items_unavailable"
    assert "NoRegionError" in r.json()["error"]["message"]
