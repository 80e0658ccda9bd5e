from sync.policy import Cron, RunPolicy
from sync.registry import Connector

from .client import MdmClient
from .resources import INELIGIBLE_ITEMS

connector = Connector(
    kind="mdm",
    label="MDM",
    client_class=MdmClient,
    resources={"ineligible_items": INELIGIBLE_ITEMS},
    secret_fields=("api_key",),
    config_fields=("s3_bucket", "s3_key"),
    # The export runs on a cron from its setting; the feature flag skips runs (with the reason) when off.
    policy=RunPolicy(
        schedule=Cron(setting="INELIGIBLE_ITEMS_SYNC_CRON_SCHEDULE"),
        enabled_setting="INELIGIBLE_ITEMS_SYNC_ENABLED",
    ),
    demo="connectors.mdm.demo.run",
)
