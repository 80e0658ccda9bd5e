import datetime as dt
import io

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import Client
from django_q.models import Schedule

from connectors.mdm import services
from connectors.mdm.models import ExportRun
from sync.runpolicy import schedules_register as schedules_register_all


def _schedule():
    return Schedule.objects.get(name__startswith="mdm:")


def test_cron_schedule_registered_from_env(mdm, settings, fake_clock):
    settings.INELIGIBLE_ITEMS_SYNC_CRON_SCHEDULE = "15 */2 * * *"
    schedules_register_all()
    obj = _schedule()
    assert obj.schedule_type == Schedule.CRON and obj.cron == "15 */2 * * *" and obj.repeats == -1
    # The run policy's generic start-run task (issue 15): the export is an engine run of ineligible_items.
    assert obj.func == "sync.tasks.start_scheduled_sync" and obj.args.endswith(", 'ineligible_items'")
    # django-q2's Schedule.save() recomputes a new CRON row's next_run from the wall clock, so check its shape.
    assert obj.next_run.utcoffset() == dt.timedelta(0) and obj.next_run.minute == 15 and obj.next_run.hour % 2 == 0


def test_default_cron_is_hourly(mdm, fake_clock):
    schedules_register_all()
    obj = _schedule()
    assert obj.cron == "0 * * * *" and obj.next_run == dt.datetime(2026, 1, 1, 1, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("bad", ["every hour", "61 * * * *", "* * *", ""])
def test_invalid_cron_is_a_clear_error(mdm, settings, bad):
    settings.INELIGIBLE_ITEMS_SYNC_CRON_SCHEDULE = bad
    with pytest.raises(ImproperlyConfigured, match="INELIGIBLE_ITEMS_SYNC_CRON_SCHEDULE"):
        schedules_register_all()
    assert not Schedule.objects.filter(name__startswith="mdm:").exists()


def test_disabled_sync_registers_paused(mdm, settings):
    settings.INELIGIBLE_ITEMS_SYNC_ENABLED = False
    schedules_register_all()
    assert _schedule().repeats == 0
    assert services.schedule_show()["paused"] is True


def test_pause_resume_show_survive_reregistration(mdm, fake_clock):
    schedules_register_all()
    assert services.schedule_show()["paused"] is False
    services.schedule_pause()
    assert _schedule().repeats == 0
    schedules_register_all()  # a deploy re-registering must not silently resume
    assert _schedule().repeats == 0
    shown = services.schedule_resume()
    assert shown["paused"] is False and shown["next_run"] == "2026-01-01T01:00:00+00:00"
    out = io.StringIO()
    call_command("mdm_schedule", "pause", stdout=out)
    assert '"paused": true' in out.getvalue()


def test_manage_py_export(s3, mdm, fake_clock):
    out = io.StringIO()
    call_command("mdm_export", stdout=out)
    run = ExportRun.objects.get()
    assert run.status == "success" and run.etag in out.getvalue()


def test_api_trigger_history_and_schedule(s3, mdm, staff, fake_clock, django_capture_on_commit_callbacks):
    c = Client()
    c.force_login(staff)
    with django_capture_on_commit_callbacks(execute=True):
        r = c.post("/api/mdm/exports")
    assert r.status_code == 202 and r["Location"].endswith(f"/api/mdm/exports/{r.json()['id']}")
    detail = c.get(r["Location"]).json()
    assert detail["status"] == "success" and detail["etag"].startswith('"')
    assert c.get("/api/mdm/exports").json()["count"] == 1
    assert c.post("/api/mdm/schedule", {"action": "pause"}, content_type="application/json").json()["paused"]
    assert c.get("/api/mdm/schedule").json()["paused"] is True
    assert c.post("/api/mdm/schedule", {"action": "nope"}, content_type="application/json").status_code == 400


def test_api_is_staff_only(db):
    from django.contrib.auth import get_user_model

    c = Client()
    c.force_login(get_user_model().objects.create_user("plain", password="x"))
    assert c.post("/api/mdm/exports").status_code == 403
    assert c.get("/api/mdm/items").status_code == 403


def test_api_export_operations_follow_the_admins_rule(s3, mdm, org, staff, other_staff, fake_clock):
    """The export belongs to the MDM account's organization (here ``org``): another organization's staff
    may not list its runs (error messages, S3 location), start one, or pause its schedule - as in the admin."""
    run = ExportRun.objects.create(organization=org, status="failed", error_message="MDM said no")
    c = Client()
    c.force_login(other_staff)
    assert c.get("/api/mdm/exports").status_code == 403
    assert c.get(f"/api/mdm/exports/{run.pk}").status_code == 403
    assert c.post("/api/mdm/exports").status_code == 403
    assert c.get("/api/mdm/schedule").status_code == 403
    r = c.post("/api/mdm/schedule", {"action": "pause"}, content_type="application/json")
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    assert ExportRun.objects.count() == 1  # nothing was started
    owner = Client()
    owner.force_login(staff)
    assert owner.get("/api/mdm/schedule").json()["paused"] is False  # the other staff's pause did not happen
    assert owner.get("/api/mdm/exports").json()["count"] == 1
