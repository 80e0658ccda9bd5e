"""Admin for the MuleSoft loyalty-tier refresh (LoyaltyTier changelist) and the MDM -> S3 export (ExportRun)."""

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse

from connectors.mdm import readcache, selectors, services
from connectors.mdm.models import ExportRun
from connectors.mulesoft import services as mulesoft_services
from connectors.mulesoft.models import LoyaltyRefreshState
from sync.models import SyncActivity
from sync.runpolicy import schedules_register as schedules_register_all

# Reuse the MuleSoft sandbox and the moto-server/MDM-sandbox fixtures of the connector tests.
from tests.mdm.conftest import BUCKET, KEY, mdm, moto_server, s3  # noqa: F401
from tests.mulesoft.conftest import endpoint, mulesoft  # noqa: F401

TIERS = "admin:customers_loyaltytier_changelist"
EXPORTS = "admin:mdm_exportrun_changelist"


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _refresh_url(org) -> str:
    return reverse("admin:customers_loyaltytier_refresh", args=[org.pk])


# --- Loyalty tiers -------------------------------------------------------------------------------------
def test_loyalty_status_and_outcome_rendered(staff, org, other_org, endpoint, mulesoft, fake_clock):  # noqa: F811
    mulesoft_services.loyalty_refresh(org.pk, origin="customer_list")
    body = _login(staff).get(reverse(TIERS)).content.decode()
    assert f'data-testid="loyalty-org-{org.pk}"' in body
    assert f'data-testid="loyalty-outcome-{org.pk}">Success</span>' in body
    assert "3 fetched · 3 stored" in body and "3 loyalty tier(s) refreshed" in body
    assert "2026-01-01T00:00:00" in body  # finished / last success, from the fake clock
    assert _refresh_url(org) in body and "csrfmiddlewaretoken" in body
    assert f'data-testid="loyalty-org-{other_org.pk}"' not in body  # not a member: not shown
    assert mulesoft.token not in body


def test_loyalty_http_error_outcome_rendered_with_status(staff, org, endpoint, mulesoft, fake_clock):  # noqa: F811
    mulesoft.faults.error_status, mulesoft.faults.error_times = 500, 99
    mulesoft_services.loyalty_refresh(org.pk)
    body = _login(staff).get(reverse(TIERS)).content.decode()
    assert f'data-testid="loyalty-outcome-{org.pk}">HTTP error</span>' in body and "HTTP 500" in body


def test_loyalty_never_refreshed_and_not_configured(staff, org, fake_clock):
    body = _login(staff).get(reverse(TIERS)).content.decode()
    assert f'data-testid="loyalty-outcome-{org.pk}">Never refreshed</span>' in body
    assert "not configured" in body


def test_refresh_now_runs_and_records_the_acting_user(staff, org, endpoint, mulesoft, fake_clock):  # noqa: F811
    client = _login(staff)
    response = client.post(_refresh_url(org), follow=True)
    assert response.redirect_chain[-1][0] == reverse(TIERS)
    assert "loyalty-tier refresh requested" in response.content.decode()
    requested = SyncActivity.objects.get(event="loyalty.refresh.requested")
    assert requested.actor == staff and requested.actor_label == staff.username and requested.organization == org
    # Q_SYNC runs the task inline: the refresh happened, and the page now shows its outcome.
    state = LoyaltyRefreshState.objects.get(organization=org)
    assert state.last_outcome == "success" and state.tier_count == 3 and mulesoft.calls == 1
    assert f'data-testid="loyalty-outcome-{org.pk}">Success</span>' in response.content.decode()


def test_refresh_now_is_post_only_and_csrf_protected(staff, org, fake_clock):
    client = _login(staff)
    assert client.get(_refresh_url(org)).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff)
    assert strict.post(_refresh_url(org)).status_code == 403
    assert not SyncActivity.objects.filter(event__startswith="loyalty.refresh").exists()


def test_refresh_now_during_a_rate_limit_window_is_a_warning(staff, org, fake_clock):
    LoyaltyRefreshState.objects.create(organization=org, next_allowed_at=fake_clock.now() + dt.timedelta(minutes=5))
    response = _login(staff).post(_refresh_url(org), follow=True)
    assert "MuleSoft rate limit: next refresh allowed at" in response.content.decode()
    assert SyncActivity.objects.get(event="loyalty.refresh.deferred").actor == staff


def test_staff_of_another_org_cannot_see_or_trigger(other_staff, org, other_org, endpoint, mulesoft, fake_clock):  # noqa: F811
    client = _login(other_staff)
    body = client.get(reverse(TIERS)).content.decode()
    assert f'data-testid="loyalty-org-{other_org.pk}"' in body
    assert f'data-testid="loyalty-org-{org.pk}"' not in body and mulesoft.endpoint not in body
    assert client.post(_refresh_url(org)).status_code == 404
    assert client.post(reverse("admin:customers_loyaltytier_refresh", args=[999999])).status_code == 404
    assert mulesoft.calls == 0 and not SyncActivity.objects.filter(organization=org).exists()
    assert not LoyaltyRefreshState.objects.filter(organization=org).exists()


def test_superuser_sees_and_refreshes_every_org(superuser, org, other_org, fake_clock):
    client = _login(superuser)
    body = client.get(reverse(TIERS)).content.decode()
    assert f'data-testid="loyalty-org-{org.pk}"' in body and f'data-testid="loyalty-org-{other_org.pk}"' in body
    client.post(_refresh_url(other_org))
    assert SyncActivity.objects.get(event="loyalty.refresh.requested").organization == other_org
    # No endpoint configured for it: the inline task records the "skipped" outcome.
    assert LoyaltyRefreshState.objects.get(organization=other_org).last_outcome == "skipped"


# --- MDM export -------------------------------------------------------------------------------------------
def test_export_runs_listed_with_outcome_details(staff, s3, mdm, fake_clock):  # noqa: F811
    good = services.mdm_export_run(origin="schedule")
    mdm.faults.error_status, mdm.faults.error_times = 404, 1
    bad = services.mdm_export_run(origin="schedule")
    assert good.status == "success" and bad.status == "failed"
    body = _login(staff).get(reverse(EXPORTS)).content.decode()
    for text in (f"#{good.pk}", f"s3://{BUCKET}/{KEY}", good.etag.replace('"', "&quot;"), "25", "Success", "Failed"):
        assert text in body, text
    assert f"mdm: {bad.error_type}" in body and "icon-yes.svg" in body and "icon-no.svg" in body
    assert mdm.api_key not in body
    detail = _login(staff).get(reverse("admin:mdm_exportrun_change", args=[good.pk])).content.decode()
    assert "Save" not in detail and str(good.duration_ms) in detail


def test_export_now_records_a_run_by_the_user(staff, s3, mdm, fake_clock, django_capture_on_commit_callbacks):  # noqa: F811
    client = _login(staff)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:mdm_exportrun_run"))
    assert response.status_code == 302 and response["Location"] == reverse(EXPORTS)
    run = ExportRun.objects.get()
    assert run.origin == "admin" and run.actor == staff and run.status == "success" and run.item_count == 25
    assert s3.head_object(Bucket=BUCKET, Key=KEY)["ETag"] == run.etag
    activity = SyncActivity.objects.get(event="mdm.export.succeeded")
    assert activity.actor == staff and activity.data["etag"] == run.etag
    assert client.get(reverse("admin:mdm_exportrun_run")).status_code == 405


def test_pause_and_resume_toggle_the_schedule(staff, mdm, fake_clock):  # noqa: F811
    schedules_register_all()
    client = _login(staff)
    body = client.get(reverse(EXPORTS)).content.decode()
    assert 'data-testid="mdm-schedule-state">Active' in body and "0 * * * *" in body
    response = client.post(reverse("admin:mdm_exportrun_schedule", args=["pause"]), follow=True)
    assert services.schedule_show()["paused"] is True
    assert 'data-testid="mdm-schedule-state">Paused' in response.content.decode()
    assert SyncActivity.objects.get(event="mdm.schedule.paused").actor == staff
    client.post(reverse("admin:mdm_exportrun_schedule", args=["resume"]))
    shown = services.schedule_show()
    assert shown["paused"] is False and shown["next_run"] == "2026-01-01T01:00:00+00:00"
    assert SyncActivity.objects.get(event="mdm.schedule.resumed").actor == staff
    client.post(reverse("admin:mdm_exportrun_schedule", args=["explode"]))
    assert services.schedule_show()["paused"] is False


def test_cache_age_and_count_rendered(staff, s3, mdm, fake_clock):  # noqa: F811
    client = _login(staff)
    assert 'data-testid="mdm-cache-empty"' in client.get(reverse(EXPORTS)).content.decode()
    services.mdm_export_run()
    selectors.ineligible_items()  # this process loads its copy
    fake_clock.sleep(90)
    body = client.get(reverse(EXPORTS)).content.decode()
    assert 'data-testid="mdm-cache-count">25 item(s)' in body
    assert 'data-testid="mdm-cache-age">loaded 90.0 s ago' in body and "up to date" in body
    readcache.bump_version("another-export")  # an export elsewhere: this copy is now outdated
    assert "outdated: reloads on next read" in client.get(reverse(EXPORTS)).content.decode()


def test_mdm_admin_is_for_the_export_organization_only(org, other_staff, mdm, fake_clock):  # noqa: F811
    ExportRun.objects.create(organization=org, status="success", item_count=1)
    client = _login(other_staff)
    assert client.get(reverse(EXPORTS)).status_code == 403
    assert client.post(reverse("admin:mdm_exportrun_run")).status_code == 403
    assert client.post(reverse("admin:mdm_exportrun_schedule", args=["pause"])).status_code == 403
    assert ExportRun.objects.count() == 1 and services.schedule_show()["paused"] is False
    assert "MDM exports" not in client.get(reverse("admin:sync_dashboard")).content.decode()
    assert "MDM exports" not in client.get(reverse("admin:index")).content.decode()


@pytest.mark.parametrize("user", ["staff", "superuser"])
def test_dashboard_links_both_pages(user, request, mdm, fake_clock):  # noqa: F811
    body = _login(request.getfixturevalue(user)).get(reverse("admin:sync_dashboard")).content.decode()
    assert reverse(TIERS) in body and reverse(EXPORTS) in body
    assert "Loyalty tiers (MuleSoft refresh)" in body and "MDM exports" in body


def test_unconfigured_export_is_for_superusers_only(superuser, staff, fake_clock):
    """No MDM connection and no MDM_BASE_URL: no organization owns the export, so only superusers see it."""
    body = _login(superuser).get(reverse(EXPORTS)).content.decode()
    assert 'data-testid="mdm-last-run"' in body and "never run" in body and 'data-testid="mdm-cache-empty"' in body
    assert _login(staff).get(reverse(EXPORTS)).status_code == 403
