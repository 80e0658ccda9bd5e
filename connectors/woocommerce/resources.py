"""Customers, orders, products and coupons as declarative resources with pure ``map()`` functions.

Paging (the hard part). WooCommerce pages by position, so a record deleted behind our position shifts
every later record one place to the left and plain ``page=N`` paging silently skips one. We page by ``offset`` instead and make every page re-read
the last ``PAGE_OVERLAP`` records of the previous one. A page whose first record sorts *after* the last
record we already hold proves a gap may exist, so we back off (ever larger steps) until the page overlaps
what we saw. Records are kept only if they sort after the last one seen, so the overlap never
duplicates. This holds for pages fetched in any order, which lets ``iter_pages`` fetch the next pages
speculatively in parallel and validate them in order.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import hashlib
import logging
import struct
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import urlsplit

from connectors.base import (
    BadPage,
    FetchContext,
    MappingError,
    Page,
    PaginationStalled,
    Resource,
    body_again,
    closing_connections,
    page_json,
    page_json_again,
    parse_http_date,
    parse_upstream_datetime,
)
from core.errors import KnownBodyMismatch, ReloadMismatch
from core.paging import KnownPage, ReadAhead

from . import conf

log = logging.getLogger(__name__)

PER_PAGE = 100  # the API's maximum (more is 400 rest_invalid_param)
MAX_BACKOFFS = 30


# --- small pure helpers ----------------------------------------------------------------------------------
def _str(value: Any) -> str:
    if value.__class__ is str:  # the common case first: this runs for every field of every record
        return value.strip()
    return "" if value is None else str(value).strip()


def _decimal(value: Any, field: str) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise MappingError(f"{field} is not a number: {str(value)[:40]!r}") from None
    if not number.is_finite():  # "NaN", "Infinity": no price or total is that
        raise MappingError(f"{field} is not a finite number: {str(value)[:40]!r}")
    return number


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _gmt(record: dict, name: str) -> dt.datetime | None:
    """``date_x_gmt`` is UTC without a zone; fall back to nothing rather than guess the site's zone."""
    return parse_upstream_datetime(record.get(f"{name}_gmt"))


_strip = str.strip


def _address(value: Any) -> dict:
    """The address with text keys and stripped text values. One that is that already (what WooCommerce sends)
    is returned as it is, not copied: the mapped row then shares the record's object, which nothing changes
    afterwards (records and mapped values are only read: encoded, hashed, stored). In a first sync of 100,000
    customers the two copies a customer cost 15 % of the process's CPU and 8 % of the wall time (5 interleaved
    pairs, docs/performance.md); checked in C here (~0.7 us against ~1.1 us for the copy alone). A subclass
    of str (never what a JSON parser gives) is kept as it is rather than made plain text."""
    if value.__class__ is dict:
        values = [*value.values()]
        try:
            "".join(value)  # a TypeError for a key that is not text
            if [*map(_strip, values)] == values:
                return value
        except TypeError:  # a key or a value that is not text (None, a number): the copy below
            pass
    if not isinstance(value, dict):
        return {}
    # _str inlined for string values (the hot path of every customer and order mapping).
    return {
        (k if k.__class__ is str else str(k)): (v.strip() if v.__class__ is str else _str(v)) for k, v in value.items()
    }


@functools.lru_cache(maxsize=64)
def _server_time(value: str | None) -> str | None:
    """The response's Date header as ISO UTC, or None when absent or garbled. Cached by the header's text:
    pages fetched within the same second carry the same one (email.utils' parse took ~15 us a page here, a
    look-up 0.2 us)."""
    parsed = parse_http_date(value)
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ") if parsed else None


def _to_woo_time(value: str, minus_seconds: int) -> str:
    """Stored cursor (ISO UTC) minus the overlap, in the zone-less form ``modified_after`` expects."""
    parsed = parse_upstream_datetime(value)
    if parsed is None:
        return ""
    return (parsed - dt.timedelta(seconds=minus_seconds)).strftime("%Y-%m-%dT%H:%M:%S")


# --- the paging core -------------------------------------------------------------------------------------
def _packed_ids(records: list) -> bytes | None:
    """The ids of a parsed body for its memo (Page.body_ids): each record's ``id`` when every one is an int of
    64 bits (not a bool, a string or a float, whose external id would not be ``str`` of its key), else None."""
    try:
        ids = [record["id"] for record in records]
    except (KeyError, TypeError):
        return None
    if not all(type(i) is int for i in ids):
        return None
    try:
        return struct.pack(f"<{len(ids)}q", *ids)
    except struct.error:  # beyond 64 bits
        return None


class _KnownBody:
    """A body known from its memo (FetchContext.known_body): its ids, and the response to parse should a
    record be asked for (KnownPage.records)."""

    __slots__ = ("ids", "response")

    def __init__(self, response, ids: list[int]) -> None:
        self.response, self.ids = response, ids

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, start: int) -> list[dict]:
        """The records from ``start`` on, parsed as _get parses; checked against the ids the memo gave."""
        data = page_json(self.response)
        records = data[start:] if isinstance(data, list) else None
        if records is None or _packed_ids(data) != struct.pack(f"<{len(self.ids)}q", *self.ids):
            raise KnownBodyMismatch(
                f"a page read as known does not hold the records its memo says ({_path_of(self.response)})"
            )
        return records


def _path_of(response) -> str:
    return urlsplit(getattr(response, "url", "") or "").path


class WooResource(Resource):
    endpoint: ClassVar[str] = ""
    page_size: ClassVar[int] = PER_PAGE
    mark_missing_deleted: ClassVar[bool] = True
    # Every WooCommerce object carries it (UTC, no zone): orders the snapshots (invariant 14).
    version_field: ClassVar[str] = "date_modified_gmt"
    version_kind: ClassVar[str] = "timestamp"
    # Page.reload is _reloaded over the body's bytes, encoding and path, the keys and ``last``.
    reload_travels: ClassVar[bool] = True

    # overridables ---------------------------------------------------------------------------------------
    def sort_key(self, record: dict) -> list:
        """The order the query returns (must be total); JSON-friendly so it can live in the token."""
        return [int(record["id"])]

    def query_params(self, ctx: FetchContext) -> dict:
        raise NotImplementedError

    def page_cursor(self, records: list[dict], token: dict) -> str | None:
        return None

    def key_or_none(self, record) -> list | None:
        """The record's sort key, or None for a record without a usable one (no id, an id that is not a finite
        number, not an object): paging goes on by the others (_fresh places it by the keyed record before it),
        and the engine judges the record by its id (``Resource.external_id``): without one it fails its own
        line; one that is not a number ("abc") still identifies it."""
        try:
            return self.sort_key(record) if isinstance(record, dict) else None
        except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: an id of 1e400 reads as inf
            return None

    def page_keys(self, records: list) -> list:
        """``key_or_none`` of each record of a page. The usual page (objects with an id, ``sort_key`` not
        overridden) is keyed in one comprehension instead of two calls a record (~0.9 us a record in the page
        threads every sync waits for); any record it cannot key sends the page the per-record way, which gives
        the same keys wherever this one does (``int`` of the id). A subclass that overrides ``key_or_none``
        alone must override this too."""
        if type(self).sort_key is WooResource.sort_key:
            try:
                return [[int(record["id"])] for record in records]
            except (KeyError, TypeError, ValueError, OverflowError):
                pass
        return [self.key_or_none(record) for record in records]

    # one HTTP page ---------------------------------------------------------------------------------------
    def _get(
        self, client, params: dict, offset: int, known=None
    ) -> tuple[list[dict] | _KnownBody, list, int | None, str | None, bytes, bytes | None, tuple | None]:
        """(records, each record's sort key or None, X-WP-Total, the store's clock, the body's SHA-256, the
        body's ids for its memo, what parses the body again: page_json_again's arguments, None for a known
        body) of the page at ``offset``. The keys are made once here (in the fetch thread) for step and _fresh
        to read. ``known``: FetchContext.known_body; a body it knows is not parsed (its records are a
        _KnownBody, its keys the ids it knew), for the resources that allow it (_body_memos)."""
        response = client.request("GET", self.endpoint, params={**params, "offset": offset, "per_page": self.page_size})
        # The body's digest, for the page's (step), with its Content-Type (whose charset says how the bytes
        # read). hashlib lets go of the GIL over a body this size.
        digest = hashlib.sha256(response.headers.get("Content-Type", "").encode("utf-8", "replace") + b"\n")
        digest.update(response.content)
        body = digest.digest()
        total = _int_or_none(response.headers.get("X-WP-Total"))
        server_time = _server_time(response.headers.get("Date"))
        memos = self._body_memos()
        ids = known(body) if memos and known is not None else None
        if ids is not None:
            # The same bytes parsed before, by the same code (the memo key holds its revision): the same ids,
            # in the order checked then. Parsing them would be most of an unchanged full scan's work.
            return _KnownBody(response, ids), [[i] for i in ids], total, server_time, body, None, None
        data = page_json(response)
        if not isinstance(data, list):
            raise BadPage(f"{self.name}: expected a JSON array of records at offset {offset}")
        # The order is checked on the records that have a key; one without fails its own line (issue 16)
        # instead of the whole page and the run.
        keys = self.page_keys(data)
        present = [k for k in keys if k is not None]
        if present != sorted(present):
            raise BadPage(f"{self.name}: page at offset {offset} is not in the requested order")
        body_ids = _packed_ids(data) if memos else None
        # The path alone, never the URL (body_again): with keys in the query (auth_in_query) it holds the secret.
        return data, keys, total, server_time, body, body_ids, body_again(response)

    def _body_memos(self) -> bool:
        """May pages be made from body memos (KnownPage)? Only where a record's key, id and cursor follow from
        its integer id alone, as here: the default key, external id, page and record cursors."""
        cls = type(self)
        return (
            cls.sort_key is WooResource.sort_key
            and cls.key_or_none is WooResource.key_or_none
            and cls.page_keys is WooResource.page_keys
            and cls._fresh is WooResource._fresh
            and cls.step is WooResource.step
            and cls.page_cursor is WooResource.page_cursor
            and cls.record_cursor is Resource.record_cursor
            and cls.external_id is Resource.external_id
        )

    def _initial_token(self) -> dict:
        return {"offset": 0, "last": None}

    # one validated step ------------------------------------------------------------------------------------
    def step(self, ctx: FetchContext, token: dict | None, fetch=None) -> Page:
        """Fetch the page at ``token`` (backing off while a gap is possible) and say where to go next."""
        token = dict(token or self._initial_token())
        params = self.query_params(ctx)
        fetch = fetch or (lambda offset: self._get(ctx.client, params, offset, ctx.known_body))
        offset, last = int(token["offset"]), token.get("last")
        back = self.page_size
        for _ in range(MAX_BACKOFFS):
            records, keys, total, server_time, body, body_ids, again = fetch(offset)
            if "started" in token and not token["started"]:
                token["started"] = server_time or ""  # the store's clock, not ours: no skew
            keyed = [k for k in keys if k is not None]
            gap = last is not None and offset > 0 and (not keyed or keyed[0] > last)
            if not gap:
                break
            # Records behind us vanished (or moved): re-read further back until the page overlaps.
            log.info("%s: possible page shift at offset %s; backing off %s", self.name, offset, back)
            offset = max(0, offset - back)
            back *= 2
        else:
            raise PaginationStalled(f"{self.name}: could not re-anchor paging after {MAX_BACKOFFS} back-offs")
        # The greatest key: the last one, as _get checked the order.
        top = keyed[-1] if keyed else None
        new_last = top if last is None or (top is not None and top > last) else last
        nxt = None
        if len(records) >= self.page_size:
            nxt = {**token, "offset": offset + len(records) - self.overlap, "last": new_last}
        # The records are the body's after ``last`` (_fresh): the body and ``last`` make them (Page.digest).
        digest = hashlib.sha256(body + repr(last).encode()).digest()  # repr: keys may pass 64 bits
        if isinstance(records, _KnownBody):  # every record keyed, in order: those after ``last`` are a tail
            start = bisect.bisect_right(keys, last) if last is not None else 0
            external_id = self.external_id  # what record_key would say of each (an int id: never a NUL)
            return KnownPage(
                known_ids=[external_id({"id": i}) for i in records.ids[start:]],
                load=functools.partial(records.load, start),
                next_token=nxt,
                total=total,
                digest=digest,
                body_digest=body,
            )
        fresh = self._fresh(records, keys, last)
        return Page(
            records=fresh,
            next_token=nxt,
            cursor=self.page_cursor(fresh, token),
            total=total,
            digest=digest,
            body_digest=body,
            body_ids=body_ids,
            # One of this resource's methods over plain values (the body's bytes, keys, ``last``): a fetch
            # process sends those instead of the records, and the parent makes them again from its resource.
            reload=functools.partial(self._reloaded, *again, keys, last) if again is not None else None,
        )

    def _reloaded(self, content: bytes, encoding: str | None, path: str, keys: list, last) -> list[dict]:
        """A page's records made again (Page.reload): its body parsed again, and the records after ``last``
        picked as step picked them. The same bytes through the same parser; the keys are checked all the same.
        It reads nothing but its arguments (reload_travels)."""
        data = page_json_again(content, encoding, path)
        if not isinstance(data, list) or self.page_keys(data) != keys:
            raise ReloadMismatch(f"{self.name}: a page parsed again does not hold the records it held")
        return self._fresh(data, keys, last)

    def _fresh(self, records: list, keys: list, last: list | None) -> list:
        """Records after ``last`` (``keys``: each record's key or None). A record without a key is placed by
        the keyed record before it on the page: new when that one is new (so the overlap with the previous
        page does not repeat it). ``keys`` are in order (_get checks it)."""
        if last is None:
            return list(records)
        if None not in keys:  # the usual page: the records after ``last`` are its tail
            return records[bisect.bisect_right(keys, last) :]
        fresh, before = [], None
        for record, key in zip(records, keys, strict=True):
            if key is not None:
                before = key
                if last is None or key > last:
                    fresh.append(record)
            elif last is None or (before is not None and before > last):
                fresh.append(record)
        return fresh

    @property
    def overlap(self) -> int:
        return max(1, min(conf.PAGE_OVERLAP, self.page_size - 1))

    def fetch_page(self, ctx: FetchContext) -> Page:
        return self.step(ctx, ctx.token)

    def iter_pages(self, ctx: FetchContext) -> Iterator[Page]:
        """Pages in order; once the upstream proves slow (ReadAhead), the next few offsets are fetched in
        parallel (we know how many exist from X-WP-Total) and validated in order, so a shift detected later
        still costs nothing but a re-read."""
        params = self.query_params(ctx)
        token = dict(ctx.token or self._initial_token())
        workers = max(1, conf.PAGE_CONCURRENCY)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"woo-{self.name}")
        window = ReadAhead(workers - 1, slow=conf.READ_AHEAD_AFTER_MS / 1000)
        pending: dict[int, Future] = {}
        total: int | None = None
        stride = self.page_size - self.overlap
        steps = 0

        speculative = {"used": False}
        ahead_slept = [0.0]  # the page threads' sleeps between attempts, for the pages ahead used so far

        def fetch(offset: int):
            slept, failed = ctx.client.retry_wait_seconds(), window.trials_failed
            # The scan's pace (whether reading ahead pays), our own sleeps left out: this thread's, and those of
            # the page threads for the pages ahead already used.
            window.page(time.perf_counter(), slept + ahead_slept[0])
            if window.trials_failed != failed:
                log.debug("%s: reading inline again from offset %s: pages read ahead came no faster", self.name, offset)
            future = pending.pop(offset, None)
            if future is None:
                if window.size:  # open: nothing left to measure
                    return self._get(ctx.client, params, offset, ctx.known_body)
                wall, cpu = time.perf_counter(), time.thread_time()
                got = self._get(ctx.client, params, offset, ctx.known_body)
                window.inline(
                    time.perf_counter() - wall,
                    time.thread_time() - cpu,
                    slept=ctx.client.retry_wait_seconds() - slept,
                )
                if window.size:
                    log.debug(
                        "%s: reading %s pages ahead from offset %s (pages waited %s ms)",
                        self.name,
                        window.size,
                        offset,
                        ", ".join(f"{w * 1000:.1f}" for w in window.opened_after or ()),
                    )
                return got
            speculative["used"] = True
            got, ahead_slept_here = future.result()
            ahead_slept[0] += ahead_slept_here
            return got

        @closing_connections
        def fetch_ahead(offset: int):
            """A page fetched by a page thread, with the seconds that thread slept between its attempts."""
            before = ctx.client.retry_wait_seconds()
            got = self._get(ctx.client, params, offset, ctx.known_body)
            return got, ctx.client.retry_wait_seconds() - before

        def fresh(offset: int):
            return self._get(ctx.client, params, offset, ctx.known_body)

        limited = ctx.client.rate_limit_waits
        try:
            while True:
                offset = int(token["offset"])
                if ctx.client.rate_limit_waits != limited:
                    # A 429 (in any thread): more requests in flight are the opposite of what was asked.
                    limited = ctx.client.rate_limit_waits
                    window.shut()
                    log.info(
                        "%s: rate limited; one page at a time from offset %s, then at most %s ahead",
                        self.name,
                        offset,
                        window.most,
                    )
                if total is not None and window.size:
                    for i in range(1, window.size + 1):
                        ahead = offset + i * stride
                        if ahead < total + self.page_size and ahead not in pending:
                            pending[ahead] = pool.submit(fetch_ahead, ahead)
                speculative["used"] = False
                page = self.step(ctx, token, fetch)
                if page.next_token is None and speculative["used"]:
                    # The last page must be read after every earlier one, or a record created (or, in
                    # an order that changes on edit, moved to the end) meanwhile could be missed.
                    page = self.step(ctx, token, fresh)
                total = page.total if page.total is not None else total
                for stale in [o for o in pending if o <= offset]:
                    pending.pop(stale).cancel()
                nxt = page.next_token
                yield page
                # Not held while the next page is fetched: the engine may have let its records go (_released).
                page = None
                if nxt is None:
                    return
                # Every step moves forward (offset or last key), so only endless churn can loop: cap it.
                steps += 1
                if steps > 3 * ((total or 0) // stride + 1) + 50:
                    raise PaginationStalled(f"{self.name}: paging did not settle after {steps} pages")
                token = nxt
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


# --- customers -------------------------------------------------------------------------------------------
class Customers(WooResource):
    """No date filter exists for customers (woocommerce#31482), so every run is a full scan by id."""

    name = "customers"
    model = "customers.Customer"
    endpoint = "customers"
    cursor_kind = "none"
    # meta_data holds wc_last_active, which WooCommerce moves at a customer's first visit of each day without
    # touching date_modified; _links is the REST server's decoration. map() reads neither.
    hash_ignores = ("meta_data", "_links")

    def query_params(self, ctx: FetchContext) -> dict:
        # role defaults to "customer" upstream: "all" also brings subscribers who bought as guests first.
        return {"role": "all", "orderby": "id", "order": "asc"}

    def map(self, record: dict) -> dict:
        email = _str(record.get("email"))  # the account email; billing email is contact data, not identity
        if not email:
            raise MappingError(f"customer {record.get('id')} has no email address")
        if "@" not in email or len(email) > 254:
            raise MappingError(f"customer {record.get('id')} has an invalid email address")
        billing = _address(record.get("billing"))
        shipping = _address(record.get("shipping"))
        return {
            "first_name": _str(record.get("first_name")),
            "last_name": _str(record.get("last_name")),
            "email": email,
            "username": _str(record.get("username")),
            "phone": billing.get("phone", ""),
            "company": billing.get("company", ""),
            "billing": billing,
            "shipping": shipping,
            "is_paying_customer": bool(record.get("is_paying_customer")),
            "upstream_created_at": _gmt(record, "date_created"),
            "upstream_updated_at": _gmt(record, "date_modified") or _gmt(record, "date_created"),
            "extra": {"role": _str(record.get("role")), "avatar_url": _str(record.get("avatar_url"))},
        }


# --- orders and products: incremental on modified ---------------------------------------------------------
class ModifiedResource(WooResource):
    """``modified_after`` (UTC thanks to ``dates_are_gmt``), ordered by **id** ascending.

    Why not ``orderby=modified``: many records share a modified second (bulk edits, imports) and neither
    WP_Query nor the HPOS orders table breaks those ties, so their order may differ between two page
    requests and a page boundary inside a tie group can skip records. Ids are unique and stable.

    The cursor is the newest ``date_modified_gmt`` seen, capped at the time the scan started (the first
    page's ``Date`` header, the store's own clock): a record edited behind our position during the scan
    is newer than the cap, so the next run picks it up. The next run asks from the cursor minus
    ``CURSOR_OVERLAP_SECONDS`` (inclusive overlap; re-reading a record is harmless)."""

    cursor_kind = "timestamp"

    def is_deleted(self, record: dict) -> bool:
        """Trash mirrors as deleted: a trashed order, product or coupon still answers GET by id (status
        ``trash``) but is gone for the shop; lists with the default status leave it out."""
        return _str(record.get("status")) == "trash"

    def query_params(self, ctx: FetchContext) -> dict:
        params: dict = {"orderby": "id", "order": "asc", "dates_are_gmt": "true", **self.extra_params}
        if ctx.cursor and not ctx.full_scan:
            params["modified_after"] = _to_woo_time(ctx.cursor, conf.CURSOR_OVERLAP_SECONDS)
        return params

    extra_params: ClassVar[dict] = {}

    def page_cursor(self, records: list[dict], token: dict) -> str | None:
        stamps = [_str(r.get("date_modified_gmt")) for r in records if r.get("date_modified_gmt")]
        if not stamps:
            return None
        newest = parse_upstream_datetime(max(stamps))
        started = parse_upstream_datetime(token.get("started")) if token.get("started") else None
        if started is not None and newest is not None and newest > started:
            newest = started
        return newest.strftime("%Y-%m-%dT%H:%M:%SZ") if newest else None

    def record_cursor(self, record: dict) -> str | None:
        value = parse_upstream_datetime(record.get("date_modified_gmt"))
        return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None

    def _initial_token(self) -> dict:
        return {"offset": 0, "last": None, "started": ""}


# WooCommerce's own answer (WC_Order::is_paid, wc_get_is_paid_statuses; a store's plugins may add statuses
# through the woocommerce_order_is_paid_statuses filter, which the REST API does not expose).
PAID_STATUSES = frozenset({"processing", "completed"})


def _is_paid(record: dict) -> bool:
    """Paid by status, or by a payment date. An order created as completed (imports, the REST API, the
    published example 723) has no date_paid: WooCommerce sets it only in payment_complete()."""
    return _str(record.get("status")) in PAID_STATUSES or bool(record.get("date_paid_gmt") or record.get("date_paid"))


class Orders(ModifiedResource):
    name = "orders"
    model = "commerce.Order"
    endpoint = "orders"

    def map(self, record: dict) -> dict:
        billing = _address(record.get("billing"))
        customer_id = _int_or_none(record.get("customer_id")) or 0
        items = record.get("line_items") if isinstance(record.get("line_items"), list) else []
        return {
            "number": _str(record.get("number") or record.get("id")),
            "status": _str(record.get("status")),
            "payment_status": "paid" if _is_paid(record) else "unpaid",
            "currency": _str(record.get("currency")),
            "total": _decimal(record.get("total"), "total"),
            "customer_external_id": str(customer_id) if customer_id else "",  # 0 = guest checkout
            "email": billing.get("email", ""),
            "line_items": [
                {
                    "id": item.get("id"),
                    "product_id": item.get("product_id"),
                    "variation_id": item.get("variation_id"),
                    "name": _str(item.get("name")),
                    "sku": _str(item.get("sku")),
                    "quantity": item.get("quantity"),
                    "total": _str(item.get("total")),
                }
                for item in items
                if isinstance(item, dict)
            ],
            "upstream_created_at": _gmt(record, "date_created"),
            "upstream_updated_at": _gmt(record, "date_modified"),
            "extra": {
                "payment_method": _str(record.get("payment_method")),
                "billing": billing,
                "shipping": _address(record.get("shipping")),
                "date_paid_gmt": _str(record.get("date_paid_gmt")),
                "date_completed_gmt": _str(record.get("date_completed_gmt")),
            },
        }


class Products(ModifiedResource):
    name = "products"
    model = "commerce.Product"
    endpoint = "products"
    extra_params: ClassVar[dict] = {"status": "any"}

    def map(self, record: dict) -> dict:
        name = _str(record.get("name"))
        if not name:
            raise MappingError(f"product {record.get('id')} has no name")
        status = _str(record.get("status"))
        parent = _int_or_none(record.get("parent_id")) or 0
        return {
            "name": name,
            "sku": _str(record.get("sku")),
            "handle": _str(record.get("slug")),
            "status": status,
            "active": status == "publish",
            "price": _decimal(record.get("price"), "price"),
            "regular_price": _decimal(record.get("regular_price"), "regular_price"),
            "sale_price": _decimal(record.get("sale_price"), "sale_price"),
            "stock_quantity": _int_or_none(record.get("stock_quantity")),
            "variant_parent_id": str(parent) if parent else "",
            "upstream_created_at": _gmt(record, "date_created"),
            "upstream_updated_at": _gmt(record, "date_modified"),
            "extra": {
                "type": _str(record.get("type")),
                "stock_status": _str(record.get("stock_status")),
                "permalink": _str(record.get("permalink")),
            },
        }


def _limit(value: Any, field: str) -> Decimal | None:
    """A coupon amount limit: WooCommerce stores "0.00" for "no limit" (WC_Coupon checks ``> 0``)."""
    amount = _decimal(value, field)
    return amount if amount else None


class Coupons(ModifiedResource):
    """Incremental like orders and products: the v3 coupons controller extends WC_REST_CRUD_Controller,
    whose collection parameters carry ``modified_after``/``dates_are_gmt`` since WC 5.8 (the published
    docs list only the older parameters). Coupons in the trash leave the list: the full scan marks them
    deleted."""

    name = "coupons"
    model = "commerce.Coupon"
    endpoint = "coupons"

    def map(self, record: dict) -> dict:
        code = _str(record.get("code"))
        if not code:
            raise MappingError(f"coupon {record.get('id')} has no code")
        return {
            "code": code,
            "discount_type": _str(record.get("discount_type")),
            "amount": _decimal(record.get("amount"), "amount"),
            "description": _str(record.get("description")),
            "expires_at": _gmt(record, "date_expires"),
            "usage_count": _int_or_none(record.get("usage_count")) or 0,
            "usage_limit": _int_or_none(record.get("usage_limit")),
            "usage_limit_per_user": _int_or_none(record.get("usage_limit_per_user")),
            "individual_use": bool(record.get("individual_use")),
            "free_shipping": bool(record.get("free_shipping")),
            "exclude_sale_items": bool(record.get("exclude_sale_items")),
            "minimum_amount": _limit(record.get("minimum_amount"), "minimum_amount"),
            "maximum_amount": _limit(record.get("maximum_amount"), "maximum_amount"),
            "upstream_created_at": _gmt(record, "date_created"),
            "upstream_updated_at": _gmt(record, "date_modified"),
            "extra": {
                key: record.get(key) if isinstance(record.get(key), list) else []
                for key in (
                    "product_ids",
                    "excluded_product_ids",
                    "product_categories",
                    "excluded_product_categories",
                    "email_restrictions",
                )
            }
            | {"limit_usage_to_x_items": _int_or_none(record.get("limit_usage_to_x_items"))},
        }


RESOURCES: dict[str, WooResource] = {r.name: r for r in (Customers(), Orders(), Products(), Coupons())}
