"""A Woo-like Client + Resource for bench/upstream.py, kept only as the base of the chaos suite's connector
(tests/chaos/connector.py). The benchmarks no longer use it: B1/B2/B4/B8 run the real
connectors/woocommerce connector against the real Woo sandbox (bench/woo_upstream.py).

The chaos suite keeps it because its fault matrix is keyed by page *number* (bench/upstream.py faults,
``Link rel="next"`` loops, a page count that lies) and it needs a timestamp cursor, neither of which the
real connector's offset paging over customers (no cursor) exercises. It pages with page numbers, takes
the page count from ``X-WP-TotalPages`` on the first page, then fetches the rest concurrently
(``fetch_concurrency`` threads, in page order so each page's ``next_token`` lets a crashed run resume
right after it). With ``fetch_concurrency`` = 1 it follows ``Link rel="next"`` one page at a time and
refuses to go past the page count the upstream announced.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from connectors.base import (
    BadPage,
    Client,
    FetchContext,
    MappingError,
    Page,
    PaginationStalled,
    Resource,
    parse_upstream_datetime,
)

CUSTOMERS_PATH = "wp-json/wc/v3/customers"
_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="next"')
_PAGE = re.compile(r"[?&]page=(\d+)")


class BenchWooClient(Client):
    kind = "benchwoo"

    def __init__(self, connection, **kw) -> None:
        super().__init__(connection, **kw)
        # One pooled connection per fetch thread.
        from core.http import guarded_session

        if "session" not in kw:
            self.session.close()
            self.session = guarded_session(pool_maxsize=max(4, int(connection.config.get("fetch_concurrency") or 1)))


class BenchWooCustomers(Resource):
    name = "customers"
    model = "customers.Customer"
    page_size = 100
    cursor_kind = "none"  # Woo customers have no date filter (upstream-apis.md §1): always a full scan

    def get_page(self, ctx: FetchContext, page: int) -> tuple[list[dict], int | None, int | None, str]:
        data, response = ctx.client.get_json(
            CUSTOMERS_PATH,
            params={"page": page, "per_page": self.page_size, "orderby": "id", "order": "asc", "role": "all"},
        )
        if not isinstance(data, list):
            raise BadPage(f"customers page {page}: expected a JSON array, got {type(data).__name__}")
        try:
            pages = int(response.headers["X-WP-TotalPages"])
            total = int(response.headers["X-WP-Total"])
        except (KeyError, ValueError):
            pages = total = None
        return data, pages, total, response.headers.get("Link", "")

    def fetch_page(self, ctx: FetchContext) -> Page:
        page = int(ctx.token or 1)
        records, pages, total, link = self.get_page(ctx, page)
        nxt = _NEXT.search(link)
        next_page = None
        if nxt and records:
            m = _PAGE.search(nxt.group(1))
            next_page = int(m.group(1)) if m else page + 1
            if pages is not None and next_page > pages:
                raise PaginationStalled(f"customers: next page {next_page} is past the {pages} page(s) announced")
        return Page(records=records, next_token=next_page, total=total)

    def iter_pages(self, ctx: FetchContext) -> Iterator[Page]:
        threads = int(ctx.client.connection.config.get("fetch_concurrency") or 1)
        if threads <= 1:
            yield from super().iter_pages(ctx)
            return
        first_no = int(ctx.token or 1)
        records, pages, total, _ = self.get_page(ctx, first_no)
        if pages is None or first_no >= pages or not records:
            yield Page(records=records, next_token=None, total=total)
            return
        yield Page(records=records, next_token=first_no + 1, total=total)
        # Page count known: fetch the rest concurrently, a bounded window ahead, yield in order.
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bench-fetch") as pool:
            window: list = []
            next_no = first_no + 1
            while window or next_no <= pages:
                while next_no <= pages and len(window) < threads * 2:
                    window.append((next_no, pool.submit(self.get_page, ctx, next_no)))
                    next_no += 1
                page_no, future = window.pop(0)
                recs, _, _, _ = future.result()
                yield Page(records=recs, next_token=page_no + 1 if page_no < pages else None, total=total)

    def map(self, record: dict) -> dict:
        return map_customer(record)


def map_customer(record: dict) -> dict:
    """Pure: a Woo v3 customer to Customer fields."""
    email = record.get("email")
    if not email or not isinstance(email, str):
        raise MappingError("customer has no email")
    billing = record.get("billing") if isinstance(record.get("billing"), dict) else {}
    shipping = record.get("shipping") if isinstance(record.get("shipping"), dict) else {}
    return {
        "email": email,
        "first_name": record.get("first_name") or "",
        "last_name": record.get("last_name") or "",
        "username": record.get("username") or "",
        "phone": billing.get("phone") or "",
        "company": billing.get("company") or "",
        "billing": billing,
        "shipping": shipping,
        "is_paying_customer": bool(record.get("is_paying_customer")),
        "upstream_created_at": parse_upstream_datetime(record.get("date_created_gmt")),
        "upstream_updated_at": parse_upstream_datetime(record.get("date_modified_gmt")),
        "extra": {"role": record.get("role") or "", "avatar_url": record.get("avatar_url") or ""},
    }
