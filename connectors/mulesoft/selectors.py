"""Reads for the admin and the API: where the loyalty refresh of one organization stands."""

from __future__ import annotations

from core.redaction import redact
from customers.models import LoyaltyTier
from sync.selectors import setting_get

from . import conf
from .models import LoyaltyRefreshState


def loyalty_refresh_status(organization) -> dict:
    from .services import refresh_interval

    state = LoyaltyRefreshState.objects.filter(organization=organization).first()
    endpoint = setting_get(conf.ENDPOINT_SETTING, organization=organization, default="")

    def iso(value):
        return value.isoformat() if value else None

    return {
        "configured": bool(endpoint),
        "endpoint": redact(endpoint or ""),  # a URL with user:password@ in it must not be shown
        "interval_seconds": int(refresh_interval(organization).total_seconds()),
        "last_requested_at": iso(state and state.last_requested_at),
        "last_started_at": iso(state and state.last_started_at),
        "last_finished_at": iso(state and state.last_finished_at),
        "last_success_at": iso(state and state.last_success_at),
        "next_allowed_at": iso(state and state.next_allowed_at),
        "last_outcome": (state.last_outcome if state else "") or "never",
        "last_status_code": state.last_status_code if state else None,
        "last_message": state.last_message if state else "",
        "tier_count": state.tier_count if state else None,
        "stored_tiers": LoyaltyTier.objects.filter(organization=organization, deleted_at__isnull=True).count(),
    }


def loyalty_refresh_wait_seconds(organization) -> int:
    """Whole seconds until MuleSoft's 429 window for this organization ends (at least 1)."""
    import math

    from core import clock

    state = LoyaltyRefreshState.objects.filter(organization=organization).first()
    if state is None or state.next_allowed_at is None:
        return 1
    return max(1, math.ceil((state.next_allowed_at - clock.now()).total_seconds()))
