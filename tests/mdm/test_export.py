import hashlib
import json
import logging

import pytest
from django.core import mail

from connectors.mdm import conf, readcache, services
from connectors.mdm.models import ExportRun
from sync.models import Membership, SyncActivity

from .conftest import BUCKET, KEY


def _object(s3):
    obj = s3.get_object(Bucket=BUCKET, Key=KEY)
    return obj["Body"].read(), obj


def test_success_writes_json_with_content_type_etag_and_bumps_version(s3, mdm, org, fake_clock, caplog):
    caplog.set_level(logging.INFO, logger="synchub.mdm")
    run = services.mdm_export_run(origin="manual")
    assert run.status == "success", (run.error_type, run.error_message)
    body, obj = _object(s3)
    assert obj["ContentType"] == "application/json"
    document = json.loads(body)
    assert document["count"] == 25 and document["items"][0] == {
        "sku": "SKU-00001",
        "reason": "discontinued",
        "market": "BR",
        "updated_at": "2026-01-02T12:00:00Z",
    }
    assert run.etag == obj["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'  # quoted hex MD5
    assert run.item_count == 25 and run.s3_location == f"s3://{BUCKET}/{KEY}" and run.organization == org
    assert readcache.shared_version() == f"{run.pk}:{run.etag}"
    act = SyncActivity.objects.get(event="mdm.export.succeeded")
    for key in ("success", "timestamp", "duration_ms", "item_count", "s3_location", "etag"):
        assert key in act.data
    assert act.data["success"] is True and act.data["timestamp"].startswith("2026-01-01T00:00:00")
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("mdm_export "))
    assert json.loads(line.split(" ", 1)[1])["etag"] == run.etag


def test_paging_is_followed(s3, mdm, monkeypatch, fake_clock):
    monkeypatch.setattr(conf, "MDM_PAGE_SIZE", 10)
    run = services.mdm_export_run()
    assert run.item_count == 25 and mdm.calls == 3


def test_mdm_failure_leaves_s3_and_cache_untouched(s3, mdm, fake_clock):
    good = services.mdm_export_run()
    before, _ = _object(s3)
    version = readcache.shared_version()
    mdm.items = mdm.items[:3]
    mdm.faults.error_status = 500
    run = services.mdm_export_run()
    assert run.status == "failed" and run.error_stage == "mdm" and run.error_type == "TransientError"
    assert "HTTP 500" in run.error_message and mdm.calls == 1 + conf.MDM_MAX_TRIES  # retried with backoff
    assert _object(s3)[0] == before
    assert readcache.shared_version() == version == f"{good.pk}:{good.etag}"
    act = SyncActivity.objects.filter(event="mdm.export.failed").first()
    assert act.data["success"] is False and act.data["error_type"] == "TransientError" and act.data["error_message"]


def test_mdm_empty_bucket_untouched_on_failure(s3, mdm, fake_clock):
    mdm.faults.malformed = True  # HTML where JSON was expected
    run = services.mdm_export_run()
    assert run.status == "failed" and run.error_stage == "mdm"
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_transient_mdm_errors_are_retried(s3, mdm, fake_clock):
    mdm.faults.error_status, mdm.faults.error_times = 503, 2
    run = services.mdm_export_run()
    assert run.status == "success" and mdm.calls == 3


def test_s3_failure_keeps_old_object_and_cache(s3, mdm, dead_s3, fake_clock):
    good = services.mdm_export_run()
    before, _ = _object(s3)
    mdm.items = mdm.items[:2]
    dead_s3()
    run = services.mdm_export_run()
    assert run.status == "failed" and run.error_stage == "s3" and run.error_type == "EndpointConnectionError"
    assert readcache.shared_version() == f"{good.pk}:{good.etag}"  # no invalidation
    assert _object(s3)[0] == before  # the old object is unharmed


def test_s3_permanent_error_is_not_retried(s3, mdm, monkeypatch, fake_clock):
    monkeypatch.setattr(conf, "MDM_S3_BUCKET", "no-such-bucket")
    run = services.mdm_export_run()
    assert run.status == "failed" and run.error_type == "NoSuchBucket" and fake_clock.sleeps == []


def test_transient_s3_error_is_retried(s3, mdm, monkeypatch, fake_clock):
    """A real moto server behind botocore; the first PUT gets a 503 SlowDown injected at the HTTP layer."""
    from botocore.awsrequest import AWSResponse

    from connectors.mdm import storage

    failures = {"left": 1}

    def inject(request, **kwargs):
        if request.method == "PUT" and failures["left"]:
            failures["left"] -= 1
            raw = type("Raw", (), {"stream": lambda self, *a, **k: iter([b"<Error><Code>SlowDown</Code></Error>"])})()
            return AWSResponse(request.url, 503, {}, raw)
        return None

    def client():
        c = storage.build_client(storage.client_settings())  # a private client: the handler must not leak
        c.meta.events.register("before-send.s3.PutObject", inject)
        return c

    monkeypatch.setattr(storage, "s3_client", client)
    run = services.mdm_export_run()
    assert run.status == "success" and failures["left"] == 0
    assert _object(s3)[1]["ContentType"] == "application/json"


def test_disabled_integration_is_skipped_with_reason(s3, mdm, settings, fake_clock):
    settings.MDM_INTEGRATION_ENABLED = False
    run = services.mdm_export_run(origin="schedule")
    assert run.status == "skipped" and "MDM_INTEGRATION_ENABLED=false" in run.skip_reason
    assert mdm.calls == 0 and s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    act = SyncActivity.objects.get(event="mdm.export.skipped")
    assert "disabled" in act.message and act.data["reason"] == run.skip_reason


def test_alert_after_three_consecutive_failures(s3, mdm, org, staff, fake_clock, django_capture_on_commit_callbacks):
    """MDM's alert is the generic failure-streak alert (alerts/): it moves on the run-finished signal, which
    fires on commit, hence the captured callbacks; ``alert_sent`` on the run became an Incident row."""
    from alerts.models import Incident

    def export():
        with django_capture_on_commit_callbacks(execute=True):
            return services.mdm_export_run()

    staff.email = "alice@example.com"
    staff.save()
    from django.contrib.auth import get_user_model

    member = get_user_model().objects.create_user("carol", email="carol@example.com", is_staff=True)
    Membership.objects.create(user=member, organization=org, role="member")  # not an admin: no mail
    mdm.faults.error_status = 500
    runs = [export() for _ in range(2)]
    assert [r.consecutive_failures for r in runs] == [1, 2] and mail.outbox == []
    third = export()
    incident = Incident.objects.get(connection=third.connection, resource="ineligible_items", state="open")
    assert third.consecutive_failures == 3 and incident.alert_sent_at is not None
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@example.com"]
    assert "3 times" in mail.outbox[0].subject and mdm.api_key not in mail.outbox[0].body
    export()  # the 4th failure does not mail again
    assert len(mail.outbox) == 1
    mdm.faults.error_status = None
    assert export().status == "success"
    mdm.faults.error_status = 500
    assert export().consecutive_failures == 1  # a success resets the streak


def test_task_never_raises(s3, mdm, fake_clock, monkeypatch):
    from connectors.mdm import tasks

    def boom(*a, **k):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(services, "mdm_export_run", boom)
    assert tasks.mdm_export_scheduled() is None


def test_next_scheduled_run_after_a_failure_succeeds(s3, mdm, fake_clock):
    from connectors.mdm import tasks

    mdm.faults.error_status = 500
    first = tasks.mdm_export_scheduled()
    mdm.faults.error_status = None
    second = tasks.mdm_export_scheduled()
    assert ExportRun.objects.get(pk=first).status == "failed"
    assert ExportRun.objects.get(pk=second).status == "success"


def test_secrets_stay_out_of_runs_and_activity(s3, mdm, fake_clock):
    mdm.faults.error_status = 401
    run = services.mdm_export_run()
    assert run.status == "failed"
    blob = json.dumps([a.data for a in SyncActivity.objects.all()]) + run.error_message
    assert mdm.api_key not in blob


@pytest.mark.parametrize("origin", ["api"])
def test_enqueue_runs_in_worker(s3, mdm, fake_clock, django_capture_on_commit_callbacks, origin):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.mdm_export_enqueue(origin=origin)
    run.refresh_from_db()
    assert run.status == "success" and run.origin == "api"


def test_concurrent_run_is_skipped(s3, mdm, fake_clock):
    """One run per (connection, resource) is the engine's rule (a dead worker's run is resumed by the reaper,
    tests/sync); a second export while one is active is recorded as skipped and fetches nothing."""
    from sync.services import sync_start

    live = sync_start(connection=mdm.connection, resource="ineligible_items", enqueue=False).queue
    run = services.mdm_export_run()
    assert run.status == "skipped" and run.skip_reason == "another export is running" and mdm.calls == 0
    from sync.tasks import run_queue

    assert run_queue(live.pk) == "done"
    assert services.mdm_export_run().status == "success"


def test_hanging_mdm_times_out_and_fails_cleanly(s3, mdm, monkeypatch, fake_clock):
    monkeypatch.setattr(conf, "MDM_TIMEOUT", (1.0, 0.2))
    monkeypatch.setattr(conf, "MDM_MAX_TRIES", 2)
    mdm.faults.hang_seconds = 5
    run = services.mdm_export_run()
    assert run.status == "failed" and run.error_stage == "mdm" and "timed out" in run.error_message
    assert mdm.calls == 2 and s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
