"""Customer-side writes. Loyalty tiers are refreshed by the sync engine; this app only says when."""

from __future__ import annotations

from collections.abc import Iterable

from sync.refresh import request_after_response


def loyalty_refresh_after_response(organization_ids: Iterable[int]) -> None:
    """Refresh these organizations' loyalty tiers once the response has been sent: whichever connector
    writes ``customers.LoyaltyTier`` runs (throttled by its policy) in a worker, never in this request."""
    request_after_response(model="customers.LoyaltyTier", organization_ids=organization_ids)
