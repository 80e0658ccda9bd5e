import datetime as dt

from sync.policy import RunPolicy
from sync.registry import Connector

from .client import MuleSoftClient
from .resources import LOYALTY_TIERS

connector = Connector(
    kind="mulesoft",
    label="MuleSoft",
    client_class=MuleSoftClient,
    resources={"loyalty_tiers": LOYALTY_TIERS},
    secret_fields=("access_token",),
    config_fields=(),
    # At most one refresh per organization an hour, whoever triggers it; extra triggers are skipped.
    policy=RunPolicy(throttle=dt.timedelta(hours=1)),
    demo="connectors.mulesoft.demo.run",
)
