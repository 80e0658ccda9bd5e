"""Review of issue 15: "retry" works for the MDM export as for any resource. A run whose S3 write failed,
retried once S3 is back, writes the document; its run history must then say so."""

import json

from connectors.mdm import conf, readcache
from connectors.mdm.models import ExportRun
from sync import services
from sync.models import SyncQueue, SyncStatus
from sync.tasks import run_queue

from .conftest import BUCKET, KEY


def test_retry_after_an_s3_failure_writes_and_records_success(s3, mdm, dead_s3, fake_clock, monkeypatch):
    good_endpoint = conf.MDM_S3_ENDPOINT_URL
    dead_s3()
    started = services.sync_start(connection=mdm.connection, resource="ineligible_items", enqueue=False)
    run_queue(started.queue.pk)
    assert ExportRun.objects.get(queue=started.queue).status == "failed"

    monkeypatch.setattr(conf, "MDM_S3_ENDPOINT_URL", good_endpoint)
    fake_clock.advance(60)
    queue = services.queue_retry(queue=SyncQueue.objects.get(pk=started.queue.pk), enqueue=False)
    assert run_queue(queue.pk) == "done"
    assert json.loads(s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read())["count"] == 25
    assert SyncStatus.objects.get(connection=mdm.connection).state == "success"
    run = ExportRun.objects.filter(queue=queue).order_by("-id").first()
    assert readcache.shared_version() == f"{run.pk}:{run.etag}"
    assert run.status == "success", (run.status, run.error_stage, run.error_message)
