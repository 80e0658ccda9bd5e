"""MuleSoft settings read from the environment (documented in .env.example).

The bearer token itself is ``settings.MULESOFT_ACCESS_TOKEN`` (read in config/settings.py)."""

from __future__ import annotations

import environ

env = environ.Env()

# SystemSetting keys (per organization or global; editable in the admin).
ENDPOINT_SETTING = "mulesoft_loyalty_sync_endpoint"
INTERVAL_SETTING = "mulesoft_loyalty_refresh_interval_seconds"

# Default throttle: at most one refresh per organization per interval, however often the list is opened.
DEFAULT_REFRESH_INTERVAL_SECONDS = env.int("MULESOFT_LOYALTY_REFRESH_INTERVAL_SECONDS", default=3600)
# Short timeouts: the refresh runs in a worker, but a hanging MuleSoft must not hold it for minutes.
TIMEOUT = (env.float("MULESOFT_CONNECT_TIMEOUT", default=5.0), env.float("MULESOFT_READ_TIMEOUT", default=10.0))
MAX_TRIES = env.int("MULESOFT_MAX_TRIES", default=3)
# A 429 whose window resets sooner than this is waited out inline; a longer one defers the next refresh.
MAX_INLINE_RATE_LIMIT_WAIT = env.float("MULESOFT_MAX_INLINE_RATE_LIMIT_WAIT", default=5.0)

# Push (MuleSoft posts tier changes to us, docs/connectors/mulesoft.md): the signed timestamp must be within
# this many seconds of our clock; deliveries are remembered for twice that (dedupe), then purged.
PUSH_TOLERANCE_SECONDS = env.int("MULESOFT_PUSH_TOLERANCE_SECONDS", default=300)
PUSH_MAX_BYTES = env.int("MULESOFT_PUSH_MAX_BYTES", default=262_144)
PUSH_MAX_DEPTH = env.int("MULESOFT_PUSH_MAX_DEPTH", default=20)
PUSH_MAX_TIERS = env.int("MULESOFT_PUSH_MAX_TIERS", default=1000)
