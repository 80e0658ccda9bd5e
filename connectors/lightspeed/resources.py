"""Lightspeed 2.0 collections, paged by the global ``version`` cursor.

Dialect: ``GET /{collection}?after=<version>&page_size=N&deleted=true`` answers
``{"data": [...], "version": {"min": a, "max": b}}`` in ascending version order; the next page asks
``after=version.max`` (exclusive); the end is an empty ``data``. Deleted objects have a non-null
``deleted_at``. ``fetch_page`` is pure HTTP (the engine runs it in a prefetch thread).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from connectors.base import (
    BadPage,
    FetchContext,
    MappingError,
    Page,
    PaginationStalled,
    Resource,
    body_reload,
    page_json_again,
    parse_upstream_datetime,
)
from core.errors import ReloadMismatch

from . import conf


def _version(value: Any, what: str) -> int:
    if isinstance(value, bool) or value is None:
        raise BadPage(f"{what} is not a version number: {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadPage(f"{what} is not a version number: {str(value)[:40]!r}") from None


class VersionedResource(Resource):
    """One Lightspeed collection. Subclasses set ``name``, ``model``, ``collection`` and ``map``."""

    collection: ClassVar[str] = ""
    cursor_kind = "version"
    # Lightspeed's global, ever-growing integer: orders the snapshots (invariant 14).
    version_field = "version"
    version_kind = "integer"
    # Page.reload is _reloaded over the body's bytes, encoding and path (a fetch process sends those).
    reload_travels = True

    def fetch_page(self, ctx: FetchContext) -> Page:
        # token = version.max of the previous page; otherwise the committed cursor (none on a full scan).
        after = ctx.token if ctx.token is not None else ("" if ctx.full_scan else ctx.cursor)
        params: dict[str, Any] = {"page_size": conf.page_size(), "deleted": "true"}
        if after not in (None, ""):
            params["after"] = str(after)
        body, response = ctx.client.get_json(self.collection, params=params)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise BadPage(f"{self.name}: expected {{'data': [...], 'version': {{...}}}} from {self.collection}")
        records = body["data"]
        if not records:
            return Page(records=[], next_token=None)
        version = body.get("version")
        if isinstance(version, dict):
            top = _version(version.get("max"), f"{self.name} version.max")
        else:
            # Lightspeed's own published list examples omit the range; every record carries its version,
            # and the page's max is what `after` needs. A record without one leaves nothing to page by.
            top = max(
                _version(r.get("version") if isinstance(r, dict) else None, f"{self.name} record version")
                for r in records
            )
        if after not in (None, "") and top <= int(after):
            # Versions only grow; a page that does not move past `after` would loop forever.
            raise PaginationStalled(f"{self.name}: version.max {top} did not advance past after={after}")
        reload = body_reload(self._reloaded, response)  # the engine may let the records go and ask again
        return Page(records=records, next_token=str(top), cursor=str(top), reload=reload)

    def _reloaded(self, content: bytes, encoding: str | None, path: str) -> list[dict]:
        """A page's records made again (Page.reload): the body parsed again, its ``data``. Reads nothing but its
        arguments; the engine checks the records against the ids they had."""
        body = page_json_again(content, encoding, path)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise ReloadMismatch(f"{self.name}: a page parsed again does not hold the records it held")
        return body["data"]

    def is_deleted(self, record: dict) -> bool:
        return record.get("deleted_at") not in (None, "")

    def record_cursor(self, record: dict) -> str | None:
        value = record.get("version")
        return str(value) if value not in (None, "") else None

    # helpers for mappers -----------------------------------------------------------------------------------
    @staticmethod
    def timestamps(record: dict) -> dict:
        return {
            "upstream_created_at": parse_upstream_datetime(record.get("created_at")),
            "upstream_updated_at": parse_upstream_datetime(record.get("updated_at")),
        }


def _text(record: dict, key: str, limit: int | None = 255) -> str:
    """Text as sent; longer than ``limit`` (an identifier's bound) fails the record naming the field. Names
    and free text take ``limit=None``: kept whole."""
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)):
        raise MappingError(f"{key} is not text")
    text = str(value).strip()
    if limit is not None and len(text) > limit:
        raise MappingError(f"{key} is longer than {limit} characters")
    return text


def _decimal(record: dict, key: str) -> Decimal | None:
    value = record.get(key)
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise MappingError(f"{key} is not a number: {str(value)[:40]!r}") from None
    if not number.is_finite():
        raise MappingError(f"{key} is not a finite number")
    return number


class Customers(VersionedResource):
    name = "customers"
    model = "customers.Customer"
    collection = "customers"

    def map(self, record: dict) -> dict:
        balance = _decimal(record, "loyalty_balance")
        if balance is not None:
            balance = balance.quantize(Decimal("0.01"))
        return {
            "first_name": _text(record, "first_name", None),
            "last_name": _text(record, "last_name", None),
            "email": _text(record, "email", 254),
            "phone": _text(record, "phone", 64),
            "company": _text(record, "company_name", None),
            "customer_code": _text(record, "customer_code"),
            "customer_group_id": _text(record, "customer_group_id"),
            "loyalty_balance": balance,
            **self.timestamps(record),
            "extra": {"version": str(record.get("version", "")), "note": record.get("note") or ""},
        }


class Products(VersionedResource):
    name = "products"
    model = "commerce.Product"
    collection = "products"

    def map(self, record: dict) -> dict:
        active = record.get("active", True)
        if not isinstance(active, bool):
            raise MappingError("active is not a boolean")
        price = _decimal(record, "price_including_tax")
        return {
            "name": _text(record, "name", None),
            "sku": _text(record, "sku"),
            "handle": _text(record, "handle"),
            "active": active,
            "status": "active" if active else "inactive",
            "price": price,
            "regular_price": price,
            "variant_parent_id": _text(record, "variant_parent_id"),
            **self.timestamps(record),
            "extra": {
                "version": str(record.get("version", "")),
                "price_excluding_tax": str(_decimal(record, "price_excluding_tax") or ""),
                "supply_price": str(_decimal(record, "supply_price") or ""),
            },
        }


class CustomerGroups(VersionedResource):
    """The worked example of docs/connectors/adding-a-resource.md."""

    name = "customer_groups"
    model = "lightspeed.CustomerGroup"
    collection = "customer_groups"

    def map(self, record: dict) -> dict:
        name = _text(record, "name", None)
        if not name:
            raise MappingError("a customer group needs a name")
        return {
            "name": name,
            "group_code": _text(record, "group_id"),
            "version": str(record.get("version", "")),
            **self.timestamps(record),
        }
