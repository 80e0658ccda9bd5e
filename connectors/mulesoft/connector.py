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
    demo="connectors.mulesoft.demo.run",
)
