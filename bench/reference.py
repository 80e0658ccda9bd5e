"""The reference: the physical limit of "fetch the pages, write the rows" for this machine.

A plain script: GET the very pages the real WooCommerce connector asks for, with the same auth, with one
``requests.Session`` (or ``threads`` sessions for the B8 variant), parse the JSON, map each record with the
connector's own customers mapper (``connectors.woocommerce.resources.Customers.map``), COPY the rows into a
staging table and upsert them into ``customers_customer`` with one ``INSERT ... ON CONFLICT DO UPDATE``.

"The very pages": the connector pages by ``offset`` with ``per_page=100`` and re-reads the last
``PAGE_OVERLAP`` records of the previous page (so a deleted record cannot shift one past it unseen), i.e.
offsets 0, 95, 190, ... until a page comes back short, with its query parameters and, over plain HTTP to
loopback, the consumer key and secret in the query string. The reference plans the same offsets from
``X-WP-Total`` and drops the re-read records by id, as the connector does. No shortcut the engine could
not take (same HTTP requests, JSON, mapper, table and indexes; rows committed). It keeps no queue, lines,
leases, activity or crash safety: the difference is the engine's overhead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import orjson
import psycopg
import requests

COLUMNS = [
    "external_id",
    "email",
    "first_name",
    "last_name",
    "username",
    "phone",
    "company",
    "billing",
    "shipping",
    "is_paying_customer",
    "upstream_created_at",
    "upstream_updated_at",
    "extra",
]
JSON_COLUMNS = {"billing", "shipping", "extra"}
UPDATE = [c for c in COLUMNS if c != "external_id"] + ["synced_at", "deleted_at", "organization_id"]


def _customers():
    from connectors.woocommerce.resources import Customers

    return Customers()


def offsets(total: int, per_page: int, overlap: int) -> list[int]:
    """The offsets the connector reads for ``total`` records: every page but the last is full, and each
    starts ``overlap`` records before the previous one ended; the first short page is the last."""
    out, offset = [0], 0
    while offset + per_page <= total:
        offset += per_page - overlap
        out.append(offset)
    return out


def pages(url: str, *, key: str, secret: str, threads: int = 1) -> Iterator[list[dict]]:
    """The customers pages in order, fetched as the connector fetches them (same URL, parameters, auth)."""
    resource = _customers()
    per_page, overlap = resource.page_size, resource.overlap
    params = {**resource.query_params(None), "per_page": per_page, "consumer_key": key, "consumer_secret": secret}
    local = threading.local()

    def fetch(offset: int) -> tuple[list[dict], int]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False  # no proxy from the environment, like the engine's guarded session
        resp = session.get(
            url, params={**params, "offset": offset}, headers={"Accept": "application/json"}, timeout=(5, 30)
        )
        resp.raise_for_status()
        return resp.json(), int(resp.headers["X-WP-Total"])

    first, total = fetch(0)
    yield first
    rest = offsets(total, per_page, overlap)[1:]
    if threads <= 1:
        for offset in rest:
            yield fetch(offset)[0]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for records, _ in pool.map(fetch, rest):
                yield records


def run(
    base_url: str, dsn: str, *, organization_id: int, connection_id: int, key: str, secret: str, threads: int = 1
) -> tuple[float, int]:
    """Sync every customer; return (seconds, rows upserted)."""
    from connectors.woocommerce.client import api_root

    resource = _customers()
    url = api_root(base_url) + resource.endpoint
    mapped_columns = set(COLUMNS) - {"external_id"}

    def row(record: dict) -> tuple:
        values = resource.map(record)
        values["external_id"] = resource.external_id(record)
        # orjson, as the engine uses: the reference gets the fastest JSON rendering too.
        return tuple(orjson.dumps(values[c]).decode() if c in JSON_COLUMNS else values[c] for c in COLUMNS)

    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE ref_stage (external_id text, email text, first_name text, last_name text, username text,"
            " phone text, company text, billing jsonb, shipping jsonb, is_paying_customer boolean,"
            " upstream_created_at timestamptz, upstream_updated_at timestamptz, extra jsonb) ON COMMIT DROP"
        )
        total, last = 0, 0
        for records in pages(url, key=key, secret=secret, threads=threads):
            fresh = [r for r in records if int(r["id"]) > last]  # the overlap re-read, as the connector drops it
            if not fresh:
                continue
            last = int(fresh[-1]["id"])
            if total == 0 and set(resource.map(fresh[0])) != mapped_columns:
                raise RuntimeError(f"the mapper's fields changed: {sorted(resource.map(fresh[0]))}; update COLUMNS")
            with cur.copy(f"COPY ref_stage ({', '.join(COLUMNS)}) FROM STDIN") as cp:
                for record in fresh:
                    cp.write_row(row(record))
            total += len(fresh)
        cur.execute(
            f"INSERT INTO customers_customer (organization_id, connection_id, synced_at, deleted_at, customer_code,"
            f" customer_group_id, loyalty_tier, {', '.join(COLUMNS)})"
            f" SELECT %s, %s, now(), NULL, '', '', '', {', '.join(COLUMNS)} FROM ref_stage"
            f" ON CONFLICT (connection_id, external_id) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in UPDATE),
            (organization_id, connection_id),
        )
        upserted = cur.rowcount
        conn.commit()
    if upserted != total:
        raise RuntimeError(f"reference upserted {upserted} rows of {total}")
    return time.perf_counter() - t0, upserted
