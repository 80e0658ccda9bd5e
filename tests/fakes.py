"""An in-memory connector kind ("fake") for engine tests: no HTTP, fully controllable."""

from __future__ import annotations

import functools
import pickle
import threading

from connectors.base import Client, FetchContext, MappingError, Page, TransientError
from sync.registry import Connector


class FakeUpstream:
    def __init__(self, n: int = 0) -> None:
        self.records: list[dict] = [self.make(i) for i in range(1, n + 1)]
        self.fail_pages: dict[int, Exception] = {}
        self.page_calls = 0
        self.lock = threading.Lock()
        # Misbehaviours tests switch on: paging that never advances, and mapper failures that heal.
        self.ignore_paging = False  # every page returns page 0's records with a new token
        self.repeat_token = False  # every page answers next_token=1
        self.flaky: dict[str, int] = {}  # external id -> how many more times map() raises

    @staticmethod
    def make(i: int, **extra) -> dict:
        return {
            "id": i,
            "email": f"user{i}@example.com",
            "first_name": f"First{i}",
            "last_name": f"Last{i}",
            "version": i,
            **extra,
        }


UPSTREAM = FakeUpstream()


class FakeClient(Client):
    kind = "fake"


class FakeCustomers:
    reload_travels = True  # (Resource.reload_travels) its Page.reload reads nothing but the body it is given
    name = "customers"
    model = "customers.Customer"
    page_size = 10
    cursor_kind = "version"
    mark_missing_deleted = False
    update_fields = None
    version_field = "version"
    version_kind = "integer"

    def version(self, record):
        from connectors.base import Resource

        return Resource.version(self, record)  # type: ignore[arg-type]

    def iter_pages(self, ctx: FetchContext):
        from connectors.base import Resource

        return Resource.iter_pages(self, ctx)  # type: ignore[arg-type]

    def fetch_page(self, ctx: FetchContext) -> Page:
        with UPSTREAM.lock:
            UPSTREAM.page_calls += 1
            page_no = int(ctx.token or 0)
            if page_no in UPSTREAM.fail_pages:
                raise UPSTREAM.fail_pages[page_no]
            after = int(ctx.cursor or 0)
            rows = [r for r in UPSTREAM.records if int(r.get("version", 0)) > after]
            rows.sort(key=lambda r: r["version"])
            chunk = rows[page_no * self.page_size : (page_no + 1) * self.page_size]
            if UPSTREAM.ignore_paging:
                chunk = rows[: self.page_size]
        nxt = page_no + 1 if (page_no + 1) * self.page_size < len(rows) else None
        if UPSTREAM.ignore_paging:
            nxt = page_no + 1
        if UPSTREAM.repeat_token:
            nxt = 1
        # reload: the page as a body to parse again (Page.reload), so a first sync lets its records go (the
        # engine's _released) on every fake first sync, as it does on WooCommerce's pages; one of this
        # resource's methods over the body's bytes, so a fetch process sends the body, not the records (the
        # engine's _travelling), as for WooCommerce's pages.
        body = pickle.dumps(chunk)
        return Page(
            records=pickle.loads(body), next_token=nxt, total=len(rows), reload=functools.partial(self._reloaded, body)
        )

    def _reloaded(self, body: bytes) -> list:
        return pickle.loads(body)

    def external_id(self, record):
        from connectors.base import Resource

        return Resource.external_id(self, record)  # type: ignore[arg-type]

    def is_deleted(self, record):
        return bool(record.get("deleted"))

    def record_cursor(self, record):
        return str(record["version"]) if "version" in record else None

    def map(self, record):
        if record.get("boom"):
            raise RuntimeError("transient mapper failure")
        with UPSTREAM.lock:
            left = UPSTREAM.flaky.get(str(record.get("id")), 0)
            if left > 0:
                UPSTREAM.flaky[str(record.get("id"))] = left - 1
        if left > 0:
            raise RuntimeError("flaky mapper failure")
        if not record.get("email"):
            raise MappingError("email is required")
        return {
            "email": record["email"],
            "first_name": record.get("first_name", ""),
            "last_name": record.get("last_name", ""),
        }


connector = Connector(kind="fake", label="Fake", client_class=FakeClient, resources={"customers": FakeCustomers()})


class FlakyError(TransientError):
    pass
