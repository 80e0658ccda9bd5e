import datetime as dt

from sync.policy import Housekeeping, RunPolicy
from sync.registry import Connector
from sync.sinks import TableSink

from . import conf
from .client import MuleSoftClient
from .resources import LOYALTY_TIERS

connector = Connector(
    kind="mulesoft",
    label="MuleSoft",
    client_class=MuleSoftClient,
    resources={"loyalty_tiers": LOYALTY_TIERS},
    # push_secret: the HMAC key MuleSoft signs its pushes with (push.py); none = push disabled (404).
    secret_fields=("access_token", "push_secret"),
    config_fields=(),
    demo="connectors.mulesoft.demo.run",
    # At most one automatic refresh an hour per organization (its one connection); the SystemSetting
    # mulesoft_loyalty_refresh_interval_seconds overrides the window. Staff "Refresh now" forces.
    policy=RunPolicy(
        throttle=dt.timedelta(seconds=conf.DEFAULT_REFRESH_INTERVAL_SECONDS),
        extra={"throttle_setting": "mulesoft_loyalty_refresh_interval_seconds"},
        housekeeping=(
            Housekeeping(
                name="mulesoft:push-deliveries-purge",
                func="connectors.mulesoft.tasks.push_deliveries_purge",
                every=dt.timedelta(days=1),
            ),
        ),
    ),
    # Tiers land in customers.LoyaltyTier; every settled run is recorded as one of the four outcomes.
    sink=TableSink(outcome="connectors.mulesoft.services.record_outcome"),
)
