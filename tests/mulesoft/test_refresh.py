import datetime as dt

import pytest

from connectors.mulesoft import services
from connectors.mulesoft.models import LoyaltyRefreshState
from connectors.mulesoft.selectors import loyalty_refresh_status
from customers.models import LoyaltyTier
from sync.models import SyncActivity, SyncQueue
from sync.tasks import run_queue


def _last_activity(org):
    return SyncActivity.objects.filter(organization=org, event__startswith="loyalty.refresh.").first()


def test_not_configured_is_skipped(org, mulesoft, fake_clock):
    result = services.loyalty_refresh(org.pk)
    assert result.outcome == "skipped"
    act = _last_activity(org)
    assert act.event == "loyalty.refresh.skipped" and "not configured" in act.message
    assert mulesoft.calls == 0
    assert loyalty_refresh_status(org)["last_outcome"] == "skipped"


def test_success_stores_tiers_with_count(org, endpoint, mulesoft, fake_clock):
    result = services.loyalty_refresh(org.pk)
    assert result.outcome == "success" and result.tier_count == 3
    tiers = LoyaltyTier.objects.filter(organization=org).order_by("rank")
    assert [t.name for t in tiers] == ["Bronze", "Silver", "Gold"]
    assert tiers[2].min_points == 5000 and tiers[2].connection.kind == "mulesoft"
    act = _last_activity(org)
    assert act.event == "loyalty.refresh.succeeded" and act.data["tier_count"] == 3
    status = loyalty_refresh_status(org)
    assert status["last_outcome"] == "success" and status["tier_count"] == 3 and status["stored_tiers"] == 3
    # Re-running is an idempotent upsert; a tier gone upstream is marked deleted, not duplicated.
    mulesoft.tiers.pop(0)
    fake_clock.advance(1)  # a later run (the scan keeps rows written at or after its start)
    assert services.loyalty_refresh(org.pk).tier_count == 2
    assert LoyaltyTier.objects.filter(organization=org).count() == 3
    assert LoyaltyTier.objects.get(external_id="tier-bronze").deleted_at is not None


def test_http_error_records_status(org, endpoint, mulesoft, fake_clock):
    mulesoft.faults.error_status = 500
    result = services.loyalty_refresh(org.pk)
    assert result.outcome == "http_error" and result.status == 500
    assert mulesoft.calls == 3  # transient: retried with backoff, then given up
    act = _last_activity(org)
    assert act.event == "loyalty.refresh.http_error" and act.data["status"] == 500 and act.level == "error"
    assert LoyaltyTier.objects.count() == 0


def test_bearer_is_checked(org, endpoint, mulesoft, settings, fake_clock):
    settings.MULESOFT_ACCESS_TOKEN = "wrong-token-value"
    result = services.loyalty_refresh(org.pk)
    assert result.outcome == "http_error" and result.status == 401
    assert "wrong-token-value" not in _last_activity(org).message


def test_network_error_records_message(org, fake_clock):
    from sync.services import setting_set

    setting_set(key="mulesoft_loyalty_sync_endpoint", value="http://127.0.0.1:9/api", organization=org)
    result = services.loyalty_refresh(org.pk)
    assert result.outcome == "network_error" and result.status is None
    act = _last_activity(org)
    assert act.event == "loyalty.refresh.network_error" and "network error" in act.message


def test_hang_is_a_network_error(org, endpoint, mulesoft, fake_clock):
    mulesoft.faults.hang_seconds = 5
    result = services.loyalty_refresh(org.pk)
    assert result.outcome == "network_error" and "timed out" in result.message


def test_short_429_is_waited_out_using_reset_ms(org, endpoint, mulesoft, fake_clock):
    mulesoft.faults.rate_limited_times = 1
    mulesoft.faults.reset_ms = 1500
    result = services.loyalty_refresh(org.pk)
    assert result.outcome == "success" and mulesoft.calls == 2
    assert 1.5 in fake_clock.sleeps  # X-Ratelimit-Reset is milliseconds


def test_long_429_defers_next_refresh(org, endpoint, mulesoft, fake_clock):
    mulesoft.faults.rate_limited_times = 5
    mulesoft.faults.reset_ms = 120_000
    result = services.loyalty_refresh(org.pk)
    assert result.outcome == "http_error" and result.status == 429 and mulesoft.calls == 1
    state = LoyaltyRefreshState.objects.get(organization=org)
    assert state.next_allowed_at == fake_clock.now() + dt.timedelta(seconds=120)
    # Even "refresh now" honours the window...
    assert services.loyalty_refresh_now(org, actor=None)["enqueued"] is False
    fake_clock.advance(121)
    mulesoft.faults.rate_limited_times = 0
    # ...and after it, refresh now runs (inline under Q_SYNC in tests).
    assert services.loyalty_refresh_now(org, actor=None)["enqueued"] is True
    assert loyalty_refresh_status(org)["last_outcome"] == "success"


@pytest.mark.parametrize("interval", [None, 600])
def test_throttle_once_per_interval(org, fake_clock, interval):
    from django_q.models import OrmQ

    from sync.services import setting_set

    setting_set(key="mulesoft_loyalty_sync_endpoint", value="http://127.0.0.1:9/api", organization=org)
    if interval:
        setting_set(key="mulesoft_loyalty_refresh_interval_seconds", value=interval)
    window = interval or 3600
    assert services.loyalty_refresh_request([org.pk]) == [org.pk]
    for _ in range(5):
        assert services.loyalty_refresh_request([org.pk]) == []
    run_queue(SyncQueue.objects.get().pk)  # a worker runs it (nothing listens there: a network error)
    assert services.loyalty_refresh_request([org.pk]) == []  # settled, but still inside the window
    fake_clock.advance(window - 1)
    assert services.loyalty_refresh_request([org.pk]) == []
    fake_clock.advance(2)
    assert services.loyalty_refresh_request([org.pk]) == [org.pk]
    assert OrmQ.objects.count() == 2  # enqueued, not run: sync=False even when Q_SYNC is on


def test_ratelimit_reset_header_is_milliseconds():
    from connectors.mulesoft.client import ratelimit_reset_seconds

    assert ratelimit_reset_seconds({"X-Ratelimit-Reset": "2500"}) == 2.5
    assert ratelimit_reset_seconds({"X-Ratelimit-Reset": "soon"}) is None
    assert ratelimit_reset_seconds({}) is None


@pytest.mark.postgres
def test_throttle_holds_across_concurrent_requests(transactional_db):
    """Eight threads (eight connections, like eight web processes) open the list at once: one refresh."""
    import threading

    from django.db import connection
    from django_q.models import OrmQ

    from sync.models import Organization
    from sync.services import setting_set

    org = Organization.objects.create(name="Race", slug="race")
    setting_set(key="mulesoft_loyalty_sync_endpoint", value="http://127.0.0.1:9/api", organization=org)
    barrier = threading.Barrier(8)
    results = []

    def worker():
        try:
            barrier.wait()
            results.append(services.loyalty_refresh_request([org.pk]))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) for r in results) == [0] * 7 + [1]
    assert OrmQ.objects.count() == 1


def test_spent_quota_paces_before_the_next_call(org, endpoint, mulesoft, fake_clock):
    mulesoft.limit = 1  # every success says X-Ratelimit-Remaining: 0
    assert services.loyalty_refresh(org.pk).outcome == "success"
    assert fake_clock.sleeps == [5.0]  # Reset 60000 ms, bounded by MULESOFT_MAX_INLINE_RATE_LIMIT_WAIT
