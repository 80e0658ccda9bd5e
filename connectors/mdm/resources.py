"""MDM resources. ``GET /api/v1/ineligible-items?page=&page_size=`` answers
``{"items": [...], "page": n, "page_size": s, "total_pages": m, "total": t}``."""

from __future__ import annotations

from connectors.base import BadPage, FetchContext, MappingError, Page, Resource

from . import conf


class IneligibleItemsResource(Resource):
    name = "ineligible_items"
    model = ""  # exported to S3, not stored in a domain table
    cursor_kind = "none"

    def fetch_page(self, ctx: FetchContext) -> Page:
        page = int(ctx.token or 1)
        payload, _ = ctx.client.get_json(
            "api/v1/ineligible-items", params={"page": page, "page_size": conf.MDM_PAGE_SIZE}
        )
        if not isinstance(payload, dict) or not isinstance(payload.get("items"), list):
            raise BadPage("MDM ineligible-items response has no items list")
        try:
            total_pages = int(payload.get("total_pages") or 1)
        except (TypeError, ValueError):
            raise BadPage("MDM total_pages is not a number") from None
        nxt = page + 1 if page < total_pages else None
        return Page(records=payload["items"], next_token=nxt, total=payload.get("total"))

    def external_id(self, record: dict) -> str:
        sku = record.get("sku") if isinstance(record, dict) else None
        if sku in (None, ""):
            raise MappingError("item has no sku")
        return str(sku)

    def map(self, record: dict) -> dict:
        """The JSON shape other services read from S3: stable keys, nothing else."""
        return {
            "sku": self.external_id(record),
            "reason": str(record.get("reason") or ""),
            "market": str(record.get("market") or ""),
            "updated_at": record.get("updated_at") or None,
        }


INELIGIBLE_ITEMS = IneligibleItemsResource()
