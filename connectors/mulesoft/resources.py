"""MuleSoft resources. There is no standard loyalty API: our dialect is ``GET {endpoint}/loyalty/tiers``
answering ``{"data": [tier, ...]}`` (a bare list, or ``tiers``/``items`` keys, are accepted too)."""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation

from connectors.base import BadPage, FetchContext, MappingError, Page, Resource
from core.redaction import redact

log = logging.getLogger("synchub.mulesoft")


def tiers_from_payload(payload) -> list[dict]:
    if isinstance(payload, list):
        rows = payload
    elif isinstance(payload, dict):
        rows = next((payload[k] for k in ("data", "tiers", "items") if isinstance(payload.get(k), list)), None)
        if rows is None:
            raise BadPage("loyalty tiers response has no data/tiers/items list")
    else:
        raise BadPage("loyalty tiers response is not a JSON object or list")
    return [r for r in rows if isinstance(r, dict)]


_MAPPED = frozenset({"id", "code", "name", "rank", "minPoints", "benefits"})


class LoyaltyTiersResource(Resource):
    name = "loyalty_tiers"
    model = "customers.LoyaltyTier"
    cursor_kind = "none"
    mark_missing_deleted = True

    def fetch_page(self, ctx: FetchContext) -> Page:
        # Seed 000's start line, credentials in the URL redacted.
        log.info("Syncing loyalty tiers from MuleSoft: %s", redact(ctx.client.connection.base_url))
        payload, _response = ctx.client.get_json("loyalty/tiers")
        records = tiers_from_payload(payload)
        return Page(records=records, next_token=None, total=len(records))

    def external_id(self, record: dict) -> str:
        value = record.get("id") if record.get("id") not in (None, "") else record.get("code")
        if value in (None, ""):
            raise MappingError("tier has neither id nor code")
        return str(value)

    def map(self, record: dict) -> dict:
        name = str(record.get("name") or "").strip()
        if not name:
            raise MappingError("tier has no name")
        try:
            rank = int(record.get("rank") or record.get("level") or 0)
        except (TypeError, ValueError):
            raise MappingError(f"tier {name!r}: rank is not an integer") from None
        raw_points = record.get("minPoints", record.get("min_points"))
        try:
            min_points = None if raw_points in (None, "") else Decimal(str(raw_points))
        except InvalidOperation:
            raise MappingError(f"tier {name!r}: minPoints is not a number") from None
        benefits = record.get("benefits") or []
        if not isinstance(benefits, list):
            raise MappingError(f"tier {name!r}: benefits is not a list")
        return {
            # Fields MuleSoft sends beyond ours, kept for staff (SyncedRecord.extra).
            "extra": {k: v for k, v in record.items() if k not in _MAPPED},
            "code": str(record.get("code") or ""),
            "name": name,
            "rank": rank,
            "min_points": min_points,
            "benefits": benefits,
        }


LOYALTY_TIERS = LoyaltyTiersResource()
