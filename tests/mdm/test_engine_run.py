"""MDM as an ordinary engine run (issue 15): Sync now, the generic API trigger, sync_run, status and the
dashboard work for ineligible_items as for any resource; the DocumentSink writes S3 only after a complete run."""

import json

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from connectors.mdm import readcache
from connectors.mdm.models import ExportRun, IneligibleItem
from sync.models import SyncActivity, SyncQueue, SyncStatus

from .conftest import BUCKET, KEY


def _object(s3):
    return s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()


def test_dashboard_sync_now_exports_and_shows_last_success_and_counts(s3, mdm, staff, fake_clock):
    client = Client()
    client.force_login(staff)
    response = client.post(
        reverse("admin:sync_dashboard_sync"), {"connection": mdm.connection.pk, "resource": "ineligible_items"}
    )
    assert response.status_code == 302
    queue = SyncQueue.objects.get(connection=mdm.connection)
    assert queue.state == "done" and queue.done_count == 25 and queue.created_by == staff
    assert json.loads(_object(s3))["count"] == 25
    status = SyncStatus.objects.get(connection=mdm.connection, resource="ineligible_items")
    assert status.state == "success" and status.last_success_at is not None and status.records_synced == 25
    run = ExportRun.objects.get(queue=queue)
    assert run.status == "success" and readcache.shared_version() == f"{run.pk}:{run.etag}"
    body = client.get(reverse("admin:sync_dashboard")).content.decode()
    assert f'data-testid="resource-{mdm.connection.pk}-ineligible_items"' in body and "Success" in body


def test_generic_api_trigger_runs_the_export(s3, mdm, staff, fake_clock):
    api = APIClient()
    api.force_authenticate(staff)
    url = f"/api/connections/{mdm.connection.pk}/resources/ineligible_items/sync"
    response = api.post(url, {"full_scan": False}, format="json")
    assert response.status_code == 202, response.content
    queue = SyncQueue.objects.get(pk=response.json()["queue_id"])
    assert queue.state == "done" and ExportRun.objects.get(queue=queue).status == "success"
    assert json.loads(_object(s3))["count"] == 25


def test_sync_run_command_runs_the_export(s3, mdm, fake_clock, capsys):
    call_command("sync_run", str(mdm.connection.pk), "ineligible_items")
    assert "25 done" in capsys.readouterr().out or SyncQueue.objects.get().done_count == 25
    assert IneligibleItem.objects.filter(connection=mdm.connection, deleted_at__isnull=True).count() == 25
    assert json.loads(_object(s3))["count"] == 25


def test_failed_run_leaves_s3_and_cache_untouched_and_retry_then_writes(s3, mdm, fake_clock):
    from sync import services
    from sync.tasks import run_queue

    mdm.items[3]["sku"] = ""  # one record MDM sends without a key: its line fails, the run is partial
    started = services.sync_start(connection=mdm.connection, resource="ineligible_items", enqueue=False)
    assert run_queue(started.queue.pk) == "partial"
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0 and readcache.shared_version() is None
    run = ExportRun.objects.get(queue=started.queue)
    assert run.status == "failed" and run.error_stage == "mdm"
    assert SyncActivity.objects.filter(event="document.written").count() == 0


def test_sink_failure_fails_the_run_with_the_s3_stage(s3, mdm, dead_s3, fake_clock):
    from sync import services
    from sync.tasks import run_queue

    dead_s3()
    started = services.sync_start(connection=mdm.connection, resource="ineligible_items", enqueue=False)
    assert run_queue(started.queue.pk) == "partial"  # the rows are stored; the run (its document) failed
    run = ExportRun.objects.get(queue=started.queue)
    assert run.status == "failed" and run.error_stage == "s3" and run.error_type == "EndpointConnectionError"
    assert readcache.shared_version() is None
    assert SyncStatus.objects.get(connection=mdm.connection).state == "failed"


def test_flag_off_is_skipped_generically_for_every_trigger(s3, mdm, staff, settings, fake_clock):
    settings.MDM_INTEGRATION_ENABLED = False
    api = APIClient()
    api.force_authenticate(staff)
    url = f"/api/connections/{mdm.connection.pk}/resources/ineligible_items/sync"
    response = api.post(url, {}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "run_skipped"
    assert not SyncQueue.objects.exists() and mdm.calls == 0
    status = SyncStatus.objects.get(connection=mdm.connection)
    assert status.state == "skipped" and "MDM_INTEGRATION_ENABLED=false" in status.last_error
    assert SyncActivity.objects.filter(event="run.skipped").exists()
    assert ExportRun.objects.get().status == "skipped"


@pytest.mark.parametrize("shape", ["array", "object"])
def test_both_response_shapes_are_accepted(s3, mdm, fake_clock, shape, monkeypatch):
    from connectors.mdm import services

    mdm.bare_array = shape == "array"
    run = services.mdm_export_run()
    assert run.status == "success" and run.item_count == 25 and mdm.calls == 1


def test_bare_array_page_is_the_only_page():
    from connectors.mdm.resources import INELIGIBLE_ITEMS
    from core.paging import FetchContext

    class Stub:
        def get_json(self, path, params=None):
            return [{"sku": "A"}, {"sku": "B"}], None

    page = INELIGIBLE_ITEMS.fetch_page(FetchContext(client=Stub(), cursor="", token=None, full_scan=True))
    assert [r["sku"] for r in page.records] == ["A", "B"] and page.next_token is None
