"""The reference: the physical limit of "fetch the pages, write the rows" for this machine.

A plain script: GET the same bench pages with one ``requests.Session`` (or ``threads`` sessions for the
B8 variant), parse the JSON, map each record with the same pure mapper the engine uses, COPY the rows into
a staging table and upsert them into ``customers_customer`` with one ``INSERT ... ON CONFLICT DO UPDATE``.
No shortcut the engine could not take: same HTTP, same JSON, same mapping, same table and indexes, rows
committed. (It keeps no queue, lines, leases, activity or crash safety - that is the engine's overhead.)
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import requests

from bench.connector import CUSTOMERS_PATH, map_customer

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


def _row(record: dict) -> tuple:
    values = map_customer(record)
    values["external_id"] = str(record["id"])
    return tuple(json.dumps(values[c]) if c in JSON_COLUMNS else values[c] for c in COLUMNS)


def run(
    base_url: str, dsn: str, *, organization_id: int, connection_id: int, per_page: int = 100, threads: int = 1
) -> tuple[float, int]:
    """Sync every customer; return (seconds, rows upserted)."""
    url = base_url.rstrip("/") + "/" + CUSTOMERS_PATH
    local = threading.local()

    def fetch(page: int) -> tuple[list[tuple], int]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False  # no proxy from the environment, like the engine's guarded session
        resp = session.get(
            url,
            params={"page": page, "per_page": per_page, "orderby": "id", "order": "asc", "role": "all"},
            timeout=(5, 30),
        )
        resp.raise_for_status()
        return [_row(r) for r in resp.json()], int(resp.headers["X-WP-TotalPages"])

    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE ref_stage (external_id text, email text, first_name text, last_name text, username text,"
            " phone text, company text, billing jsonb, shipping jsonb, is_paying_customer boolean,"
            " upstream_created_at timestamptz, upstream_updated_at timestamptz, extra jsonb) ON COMMIT DROP"
        )
        rows, pages = fetch(1)
        total = 0

        def copy(batch: list[tuple]) -> None:
            with cur.copy(f"COPY ref_stage ({', '.join(COLUMNS)}) FROM STDIN") as cp:
                for row in batch:
                    cp.write_row(row)

        copy(rows)
        total += len(rows)
        if threads <= 1:
            for page in range(2, pages + 1):
                rows, _ = fetch(page)
                copy(rows)
                total += len(rows)
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                for rows, _ in pool.map(fetch, range(2, pages + 1)):
                    copy(rows)
                    total += len(rows)
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
