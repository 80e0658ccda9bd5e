"""Seed 004's monitoring lines (start, fetched, uploaded to S3, cache invalidated) and its failure fields
(stack trace, whether S3 data was preserved, whether the cache was left unchanged), secrets redacted."""

import logging

from connectors.mdm import readcache, services


def _lines(caplog):
    return [(r.getMessage(), r) for r in caplog.records if r.name == "synchub.mdm"]


def test_a_good_run_logs_the_four_monitoring_lines(s3, mdm, fake_clock, caplog):
    caplog.set_level(logging.INFO, logger="synchub.mdm")
    run = services.mdm_export_run()
    messages = [m for m, _ in _lines(caplog)]
    expected = [
        "Starting ineligible items sync from MDM",
        "Fetched 25 ineligible items from MDM",
        f"Uploaded ineligible items to S3: {run.s3_location} (ETag {run.etag})",
        "Ineligible items cache invalidated",
    ]
    assert [m for m in messages if not m.startswith("mdm_export ")] == expected
    uploaded = next(r for m, r in _lines(caplog) if m.startswith("Uploaded"))
    assert uploaded.event == "mdm_s3_uploaded" and uploaded.etag == run.etag and uploaded.run_id == run.pk


def test_an_mdm_failure_logs_stack_trace_and_what_was_preserved(s3, mdm, fake_clock, caplog):
    good = services.mdm_export_run()
    caplog.set_level(logging.INFO, logger="synchub.mdm")
    mdm.faults.error_status = 500
    run = services.mdm_export_run()
    failed = next(r for m, r in _lines(caplog) if m.startswith("Ineligible items sync failed"))
    assert failed.levelno == logging.ERROR and failed.event == "mdm_sync_failed"
    assert failed.s3_data_preserved is True and failed.cache_unchanged is True
    assert "Traceback" in failed.stack_trace and "TransientError" in failed.stack_trace
    assert mdm.api_key not in failed.stack_trace and mdm.api_key not in failed.getMessage()
    assert readcache.shared_version() == f"{good.pk}:{good.etag}" and run.status == "failed"
    assert not any(m.startswith("Uploaded") for m, _ in _lines(caplog))


def test_an_s3_failure_says_the_old_object_and_cache_stay(s3, mdm, dead_s3, fake_clock, caplog):
    services.mdm_export_run()
    dead_s3()
    caplog.set_level(logging.INFO, logger="synchub.mdm")
    services.mdm_export_run()
    failed = next(r for m, r in _lines(caplog) if m.startswith("Ineligible items sync failed"))
    assert failed.error_stage == "s3" and failed.s3_data_preserved is True and failed.cache_unchanged is True
    assert "Traceback" in failed.stack_trace


def test_failure_fields_in_json_logs(s3, mdm, fake_clock):
    """With LOG_FORMAT=json the fields are top-level keys (ops.logging's formatter)."""
    import json

    from ops.logging import JsonFormatter

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("synchub.mdm")
    logger.addHandler(handler)
    try:
        mdm.faults.error_status = 500
        services.mdm_export_run()
    finally:
        logger.removeHandler(handler)
    record = next(r for r in records if r.getMessage().startswith("Ineligible items sync failed"))
    line = json.loads(JsonFormatter().format(record))
    assert line["s3_data_preserved"] is True and line["cache_unchanged"] is True and "Traceback" in line["stack_trace"]
