"""MDM -> S3 export settings, read from the environment (documented in .env.example).

MDM_INTEGRATION_ENABLED, INELIGIBLE_ITEMS_SYNC_ENABLED and INELIGIBLE_ITEMS_SYNC_CRON_SCHEDULE are read in
config/settings.py (settings.*). Code reads these module attributes at call time, so tests can patch them."""

from __future__ import annotations

import environ

env = environ.Env()

# MDM itself, used when no Connection of kind "mdm" exists (a Connection wins: URL + encrypted api_key).
MDM_BASE_URL = env("MDM_BASE_URL", default="")
MDM_API_KEY = env("MDM_API_KEY", default="")
# Organization whose admins get the failure alert when the export is configured by env (slug).
MDM_ORGANIZATION = env("MDM_ORGANIZATION", default="")
MDM_PAGE_SIZE = env.int("MDM_PAGE_SIZE", default=500)
MDM_TIMEOUT = (env.float("MDM_CONNECT_TIMEOUT", default=5.0), env.float("MDM_READ_TIMEOUT", default=30.0))
MDM_MAX_TRIES = env.int("MDM_MAX_TRIES", default=4)

# Where the export lands.
MDM_S3_BUCKET = env("MDM_S3_BUCKET", default="synchub-mdm")
MDM_S3_KEY = env("MDM_S3_KEY", default="ineligible-items/ineligible_items.json")
MDM_S3_REGION = env("MDM_S3_REGION", default="us-east-1")
# Endpoint override (moto server, MinIO). Empty = real AWS. Loopback/private only with OUTBOUND_ALLOW_*.
MDM_S3_ENDPOINT_URL = env("MDM_S3_ENDPOINT_URL", default="")
# Optional explicit credentials; empty = boto3's default chain (env, profile, instance role).
MDM_S3_ACCESS_KEY_ID = env("MDM_S3_ACCESS_KEY_ID", default="")
MDM_S3_SECRET_ACCESS_KEY = env("MDM_S3_SECRET_ACCESS_KEY", default="")
MDM_S3_MAX_TRIES = env.int("MDM_S3_MAX_TRIES", default=4)
MDM_S3_TIMEOUT = (env.float("MDM_S3_CONNECT_TIMEOUT", default=5.0), env.float("MDM_S3_READ_TIMEOUT", default=30.0))

# MDM_ALERT_AFTER_FAILURES (default 3) is read by the run policy (connector.py: failure_streak_setting): the
# generic alerts (alerts/) email the organization's admins after that many failed runs in a row.

# Read path: load the items into each worker's memory when it starts; after a failed S3 load, serve the
# last good copy and try S3 again only after this many seconds.
MDM_CACHE_PRELOAD = env.bool("MDM_CACHE_PRELOAD", default=False)
MDM_CACHE_RETRY_SECONDS = env.float("MDM_CACHE_RETRY_SECONDS", default=30.0)

PAUSED_SETTING = "mdm_export_schedule_paused"
VERSION_CACHE_KEY = "synchub:mdm:ineligible-items:version"
