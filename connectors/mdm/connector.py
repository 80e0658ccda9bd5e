from sync.policy import Cron, RunPolicy
from sync.registry import Connector
from sync.sinks import DocumentSink

from .client import MdmClient
from .resources import INELIGIBLE_ITEMS

connector = Connector(
    kind="mdm",
    label="MDM",
    client_class=MdmClient,
    resources={"ineligible_items": INELIGIBLE_ITEMS},
    secret_fields=("api_key",),
    config_fields=("s3_bucket", "s3_key"),
    # The export runs on a cron from its setting (INELIGIBLE_ITEMS_SYNC_ENABLED=false registers it paused);
    # MDM_INTEGRATION_ENABLED=false: every run, whoever triggers it, is recorded as skipped with the reason.
    policy=RunPolicy(
        schedule=Cron(setting="INELIGIBLE_ITEMS_SYNC_CRON_SCHEDULE"),
        schedule_enabled_setting="INELIGIBLE_ITEMS_SYNC_ENABLED",
        enabled_setting="MDM_INTEGRATION_ENABLED",
        # The export's failure alert is the generic one (alerts/): N failed runs in a row, N from here.
        failure_streak_setting="MDM_ALERT_AFTER_FAILURES",
    ),
    demo="connectors.mdm.demo.run",
    # Rows land in mdm.IneligibleItem; after a complete run they become ONE S3 object (services.write_document),
    # and every run's outcome becomes an ExportRun, a log line, an activity and perhaps the alert.
    sink=DocumentSink(
        writer="connectors.mdm.services.write_document",
        fields=("sku", "reason", "market", "item_updated_at"),
        order_by=("sku",),
        outcome="connectors.mdm.services.record_outcome",
    ),
)
