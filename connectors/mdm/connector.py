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
    schedules="connectors.mdm.schedules.schedule_specs",
    demo="connectors.mdm.demo.run",
)
