"""MDM resources. ``GET /api/v1/ineligible-items?page=&page_size=`` answers
``{"items": [...], "page": n, "page_size": s, "total_pages": m, "total": t}``; a bare JSON array of items
(an MDM without paging) is accepted too and is the only page."""

from __future__ import annotations

import logging

from connectors.base import BadPage, FetchContext, MappingError, Page, Resource

from . import conf

log = logging.getLogger("synchub.mdm")


class IneligibleItemsResource(Resource):
    name = "ineligible_items"
    model = "mdm.IneligibleItem"  # rendered into one S3 object by the DocumentSink after a complete run
    cursor_kind = "none"
    mark_missing_deleted = True  # every run is a full scan: items MDM no longer lists leave the export

    def fetch_page(self, ctx: FetchContext) -> Page:
        page = int(ctx.token or 1)
        if page == 1:  # seed 004's first monitoring line (a resumed fetch does not start again)
            log.info("Starting ineligible items sync from MDM", extra={"event": "mdm_sync_started"})
        payload, _ = ctx.client.get_json(
            "api/v1/ineligible-items", params={"page": page, "page_size": conf.MDM_PAGE_SIZE}
        )
        if isinstance(payload, list):
            return Page(records=payload, next_token=None, total=len(payload))
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
        """The IneligibleItem row; services.render_document turns rows into the JSON other services read."""
        updated = record.get("updated_at") or None
        return {
            "sku": self.external_id(record),
            "reason": str(record.get("reason") or ""),
            "market": str(record.get("market") or ""),
            "item_updated_at": str(updated) if updated is not None else None,
        }


INELIGIBLE_ITEMS = IneligibleItemsResource()
