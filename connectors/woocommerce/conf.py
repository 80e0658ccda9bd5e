"""WooCommerce settings read from the environment (not config/settings.py: this app owns its knobs)."""

from __future__ import annotations

import environ

_env = environ.Env()

# Pages fetched at once when the store tells us its page count (X-WP-TotalPages). Small: shared hosts.
PAGE_CONCURRENCY: int = _env.int("WOOCOMMERCE_PAGE_CONCURRENCY", default=4)
# ...but only once 3 pages in a row each waited longer than this for the upstream, or one page twice as long
# (core.paging.ReadAhead: against a fast upstream, fetching in parallel costs more than it hides; the wait
# includes the interpreter lock's, up to ~15 ms three pages in a row on a busy engine). 0: from the start.
READ_AHEAD_AFTER_MS: float = _env.float("WOOCOMMERCE_READ_AHEAD_AFTER_MS", default=20.0)
# Records each offset page re-reads from the previous one, to prove nothing shifted in between.
PAGE_OVERLAP: int = _env.int("WOOCOMMERCE_PAGE_OVERLAP", default=5)
# Seconds subtracted from the stored cursor when asking for modified_after (clock skew, same-second edits).
CURSOR_OVERLAP_SECONDS: int = _env.int("WOOCOMMERCE_CURSOR_OVERLAP_SECONDS", default=60)
# Webhook deliveries remembered for duplicate detection, in days.
WEBHOOK_DEDUPE_DAYS: int = _env.int("WOOCOMMERCE_WEBHOOK_DEDUPE_DAYS", default=7)
# Largest webhook body accepted (bytes); a Woo order with many lines is well under this.
WEBHOOK_MAX_BODY: int = _env.int("WOOCOMMERCE_WEBHOOK_MAX_BODY", default=2_000_000)
# Unsigned creation pings: the same webhook_id on a connection is recorded once per window; at most
# PING_LIMIT distinct pings are recorded per connection and window (more still get 200, see services.py).
PING_WINDOW_SECONDS: int = _env.int("WOOCOMMERCE_PING_WINDOW_SECONDS", default=3600)
PING_LIMIT: int = _env.int("WOOCOMMERCE_PING_LIMIT", default=10)
