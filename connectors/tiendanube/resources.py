"""Products, orders and customers: incremental by ``updated_at_min`` (inclusive; the overlap is deduped by
the engine's lines), 200 per page, and a query that would pass the 10,000-result cap split into date
windows. Once ``x-total-count`` is known, the remaining pages of a window are fetched concurrently
(each request still waits for the store's shared bucket)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.base import (
    FetchContext,
    MappingError,
    Page,
    Resource,
    body_reload,
    closing_connections,
    page_json_again,
    parse_upstream_datetime,
)
from core import clock
from core.errors import ReloadMismatch

from . import conf

if TYPE_CHECKING:
    import requests

FMT = "%Y-%m-%dT%H:%M:%S+00:00"


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime(FMT)


def _dt(value: str) -> dt.datetime:
    return parse_upstream_datetime(value)  # type: ignore[return-value]


def first_text(value: Any) -> str:
    """Tiendanube localises names as {"es": ..., "pt": ...}; take the first non-empty one."""
    if isinstance(value, dict):
        for text in value.values():
            if text:
                return str(text)
        return ""
    return "" if value is None else str(value)


def decimal_or_none(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise MappingError(f"not a number: {str(value)[:30]!r}") from None
    if not number.is_finite():  # "NaN", "Infinity": no price or total is that
        raise MappingError(f"not a finite number: {str(value)[:30]!r}")
    return number


class TiendanubeResource(Resource):
    """Token: {"windows": [[min, max], ...], "page": n, "pages": total pages of windows[0] or null}.
    ``min`` '' means from the beginning; ``max`` '' means open-ended."""

    path: ClassVar[str] = ""
    cursor_kind = "timestamp"
    page_size = 200
    # Deletions converge (issue 16): a full scan (the scheduled reconciliation, a forced one) marks the
    # rows it did not see deleted; incremental runs cannot see deletions at all.
    mark_missing_deleted = True
    version_field = "updated_at"
    version_kind = "timestamp"
    # Page.reload is _reloaded over the body's bytes, encoding and path (a fetch process sends those).
    reload_travels = True

    def record_cursor(self, record: dict) -> str | None:
        value = record.get("updated_at") if isinstance(record, dict) else None
        if not value:
            return None
        try:
            return iso(_dt(value))
        except MappingError:
            return None

    def _params(self, window: list[str], page: int) -> dict:
        params: dict[str, Any] = {"page": page, "per_page": conf.get().page_size}
        if window[0]:
            params["updated_at_min"] = window[0]
        if window[1]:
            params["updated_at_max"] = window[1]
        return params

    def _start(self, ctx: FetchContext) -> dict:
        return {"windows": [[ctx.cursor or "", ""]], "page": 1, "pages": None}

    def fetch_page(self, ctx: FetchContext) -> Page:
        """One page, sequentially (the engine's default path and test_connection use this)."""
        token = ctx.token or self._start(ctx)
        records, total, split, response = self._fetch(ctx.client, token)
        if split is not None:
            return Page(records=[], next_token=split, total=None)
        return self._page(records, self._after(token, total), total, response)

    def _page(self, records: list, nxt: dict | None, total: int, response: requests.Response) -> Page:
        # reload: the engine may let a first sync's records go and ask for them again (Page.reload).
        return Page(records=records, next_token=nxt, total=total, reload=body_reload(self._reloaded, response))

    def _reloaded(self, content: bytes, encoding: str | None, path: str) -> list[dict]:
        """A page's records made again (Page.reload): the body parsed again, as get_page read it. Reads nothing
        but its arguments; the engine checks the records against the ids they had."""
        data = page_json_again(content, encoding, path)
        if not isinstance(data, list):
            raise ReloadMismatch(f"{self.name}: a page parsed again does not hold the records it held")
        return data

    def _fetch(self, client, token: dict) -> tuple[list, int, dict | None, requests.Response]:
        cfg = conf.get()
        window, page = token["windows"][0], token["page"]
        records, response = client.get_page(self.path, self._params(window, page))
        total = _total(response, default=len(records))
        if page == 1 and total > cfg.result_cap:
            halves = self._split(window)
            if halves is not None:
                return [], total, {"windows": halves + token["windows"][1:], "page": 1, "pages": None}, response
        return records, total, None, response

    def _split(self, window: list[str]) -> list[list[str]] | None:
        low = _dt(window[0]) if window[0] else dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        high = _dt(window[1]) if window[1] else clock.now()
        if (high - low).total_seconds() < 2:
            return None  # cannot split further: read what the cap allows
        mid = low + (high - low) / 2
        # Inclusive bounds overlap by one second on purpose; the engine dedupes lines by id.
        return [[window[0], iso(mid)], [iso(mid), iso(high)]]

    def _after(self, token: dict, total: int) -> dict | None:
        cfg = conf.get()
        pages = max(1, -(-min(total, cfg.result_cap) // cfg.page_size))
        if token["page"] < pages:
            return {"windows": token["windows"], "page": token["page"] + 1, "pages": pages}
        if len(token["windows"]) > 1:
            return {"windows": token["windows"][1:], "page": 1, "pages": None}
        return None

    def iter_pages(self, ctx: FetchContext) -> Iterator[Page]:
        """Page 1 of each window sequentially (it gives the total), then the rest concurrently, yielded in
        order so each page's token resumes right after it. At most ``page_concurrency`` pages are requested
        ahead of the one being yielded (a window has up to 50 pages: before, all were requested at once, held in
        memory whatever the consumer's pace, and a consumer that stopped, on an error or a cancel, waited for
        every one of them to be fetched); on the way out the pages not yet requested are dropped."""
        token = ctx.token or self._start(ctx)
        workers = conf.get().page_concurrency
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tn-page")
        try:
            while token is not None:
                if token["pages"] is None or workers == 1:
                    page = self.fetch_page(FetchContext(ctx.client, ctx.cursor, token, ctx.full_scan, ctx.params))
                    token = page.next_token
                    yield page
                    page = None  # not held while the next page is fetched
                    continue
                # Pages token["page"]..pages of this window, known from x-total-count.
                tokens = [token]
                while tokens[-1]["page"] < tokens[-1]["pages"]:
                    tokens.append({**tokens[-1], "page": tokens[-1]["page"] + 1})
                waiting = iter(tokens)
                in_flight = deque((t, self._request(pool, ctx.client, t)) for t in itertools.islice(waiting, workers))
                while in_flight:
                    t, future = in_flight.popleft()
                    records, response = future.result()
                    in_flight.extend((n, self._request(pool, ctx.client, n)) for n in itertools.islice(waiting, 1))
                    total = _total(response, default=len(records))
                    nxt = self._after(t, total)
                    yield self._page(records, nxt, total, response)
                    # Not held while the next page is awaited (the engine may let its records go): nor by the
                    # future, which keeps its result.
                    records = response = future = None
                    token = nxt
                    if nxt is not None and nxt["windows"] != t["windows"]:
                        # The total shrank mid-window: pages of it still requested are not needed.
                        for _, left in in_flight:
                            left.cancel()
                        in_flight.clear()
                        break
        finally:
            # cancel_futures: requests queued behind running ones (after a window cut short) are dropped too.
            pool.shutdown(wait=False, cancel_futures=True)

    def _request(self, pool: ThreadPoolExecutor, client, token: dict):
        return pool.submit(
            closing_connections(client.get_page), self.path, self._params(token["windows"][0], token["page"])
        )


def _total(response, *, default: int) -> int:
    try:
        return int(response.headers.get("x-total-count", default))
    except ValueError:
        return default


def _times(record: dict) -> dict:
    return {
        "upstream_created_at": parse_upstream_datetime(record.get("created_at")),
        "upstream_updated_at": parse_upstream_datetime(record.get("updated_at")),
    }


class Products(TiendanubeResource):
    name = "products"
    model = "commerce.Product"
    path = "products"

    def map(self, record: dict) -> dict:
        variants = record.get("variants") or []
        if not isinstance(variants, list):
            raise MappingError("variants is not a list")
        first = variants[0] if variants else {}
        stocks = [v.get("stock") for v in variants]
        # stock null means "infinite" in Tiendanube: keep None unless every variant counts stock.
        stock = sum(int(s) for s in stocks) if stocks and all(s is not None for s in stocks) else None
        price = decimal_or_none(first.get("price"))
        promo = decimal_or_none(first.get("promotional_price"))
        published = bool(record.get("published", True))
        return {
            "name": first_text(record.get("name")),
            "sku": str(first.get("sku") or ""),
            "handle": first_text(record.get("handle")),
            "status": "published" if published else "draft",
            "active": published,
            "price": promo if promo is not None else price,
            "regular_price": price,
            "sale_price": promo,
            "stock_quantity": stock,
            "variant_parent_id": "",
            **_times(record),
            "extra": {
                "variants": len(variants),
                "brand": record.get("brand"),
                "tags": record.get("tags") or "",
                "variant_ids": [v.get("id") for v in variants[:50]],
            },
        }


class Orders(TiendanubeResource):
    name = "orders"
    model = "commerce.Order"
    path = "orders"

    def map(self, record: dict) -> dict:
        customer = record.get("customer") or {}
        if not isinstance(customer, dict):
            raise MappingError("customer is not an object")
        items = [
            {
                "product_id": p.get("product_id"),
                "variant_id": p.get("variant_id"),
                "name": first_text(p.get("name")),
                "sku": p.get("sku"),
                "quantity": p.get("quantity"),
                "price": p.get("price"),
            }
            for p in (record.get("products") or [])
            if isinstance(p, dict)
        ]
        return {
            "number": str(record.get("number") or ""),
            "status": str(record.get("status") or ""),
            "payment_status": str(record.get("payment_status") or ""),
            "currency": str(record.get("currency") or ""),
            "total": decimal_or_none(record.get("total")),
            "customer_external_id": str(customer.get("id") or ""),
            "email": str(record.get("contact_email") or customer.get("email") or ""),
            "line_items": items,
            **_times(record),
            "extra": {"shipping_status": record.get("shipping_status"), "gateway": record.get("gateway")},
        }


class Customers(TiendanubeResource):
    name = "customers"
    model = "customers.Customer"
    path = "customers"

    def map(self, record: dict) -> dict:
        name = str(record.get("name") or "").strip()
        first, _, last = name.partition(" ")
        billing = {
            k[len("billing_") :]: v for k, v in record.items() if k.startswith("billing_") and v not in (None, "")
        }
        address = record.get("default_address") or {}
        return {
            "first_name": first,
            "last_name": last,
            "email": str(record.get("email") or ""),
            "phone": str(record.get("phone") or ""),
            "billing": billing,
            "shipping": address if isinstance(address, dict) else {},
            "is_paying_customer": decimal_or_none(record.get("total_spent")) not in (None, Decimal(0)),
            **_times(record),
            "extra": {
                "identification": record.get("identification"),
                "total_spent": record.get("total_spent"),
                "accepts_marketing": record.get("accepts_marketing"),
            },
        }


RESOURCES: dict[str, TiendanubeResource] = {"products": Products(), "orders": Orders(), "customers": Customers()}
