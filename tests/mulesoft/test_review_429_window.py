"""Review of issue 15: the seed's throttle also held automatic refreshes back during MuleSoft's 429 window
(seed connectors/mulesoft/services.py ``_claim``: "exactly one wins per interval (and none during a 429
window)"). The engine path must keep that."""

from connectors.mulesoft import services
from connectors.mulesoft.models import LoyaltyRefreshState
from sync.services import setting_set


def test_automatic_refresh_waits_out_a_429_window_longer_than_the_throttle(org, endpoint, mulesoft, fake_clock):
    setting_set(key="mulesoft_loyalty_refresh_interval_seconds", value=600)
    mulesoft.faults.rate_limited_times = 5
    mulesoft.faults.reset_ms = 7_200_000  # MuleSoft: come back in two hours
    assert services.loyalty_refresh(org.pk).status == 429
    until = LoyaltyRefreshState.objects.get(organization=org).next_allowed_at
    fake_clock.advance(601)  # past the throttle, still inside MuleSoft's window
    assert fake_clock.now() < until
    assert services.loyalty_refresh_request([org.pk]) == []
    fake_clock.advance(7200)
    assert services.loyalty_refresh_request([org.pk]) == [org.pk]
