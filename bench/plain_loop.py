"""The honest reference for B1/B2/B8: the simplest fast program doing the sync's work, written apart from
the engine (it imports nothing from sync/ or connectors/; from core only the collector switch the engine uses).

``run``: one ``requests.Session`` GETs ``page=1..N`` (``per_page=100``, ``role=all&orderby=id&order=asc``,
the keys as query parameters) in order, parses each body with ``orjson.loads`` (the fastest parser at hand:
a reference takes every simple speed-up, whatever the engine does; ~0.5 ms a 100-customer page against
~1.1 ms for ``json.loads``, which it used until 2026-12-03; the connector also parses with orjson now, behind
a guard the loop does not need on this data, connectors.base.response_json), takes the columns
``customers_customer`` needs straight from each record (no mapper call; the JSON columns are rendered with orjson, as the engine's COPY
path renders them), COPYs every row into one TEMP table in a single COPY, then one
``INSERT ... SELECT ... ON CONFLICT (connection_id, external_id) DO UPDATE``, commit.
``threads=4``: the same with pages 2..N fetched by 4 threads (one session each), written in page order
(B8, 50 ms per page).

``run_noparse``: the physical limit. No JSON parsing in Python: each page's raw body goes into a TEMP
table as one ``jsonb`` value (text COPY; psycopg escapes the backslashes in C, and PostgreSQL parses the
JSON while the next pages are still being fetched), and PostgreSQL extracts the columns with
``jsonb_array_elements`` / ``->>`` in the ``INSERT ... SELECT``. (Measured at 10,000 customers: a ``text``
column cast to ``jsonb`` in the INSERT took 0.69-0.73 s, ``jsonb`` in the COPY 0.55-0.58 s.)

What the loop does not do that the connector's mapper does: strip and truncate strings, turn ``None``
into ``""``, reject records without a valid email. (It does fall back from a null ``date_modified_gmt``
to ``date_created_gmt``, as the mapper does.) On the generated store none of that changes a value (tests/bench checks the rows
are identical to the engine's), and none of it is where the time goes (a few slices and dict reads).

Every variant runs with the collector's young generation raised as the engine's runs have it (GC_THRESHOLD).
Tried for the loop and slower, so not taken (2026-12-05, 100,000 customers, interleaved, medians of 5):
psycopg's ``QueuedLibpqWriter`` (the COPY data sent from a thread of its own) 3.55 s against 3.32 s; a binary
COPY (``Jsonb`` values dumped with orjson, the times parsed to datetimes) 4.01 s against 3.32 s.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import orjson
import psycopg
import requests

from core.gctune import fewer_collections

QUERY = {"role": "all", "orderby": "id", "order": "asc", "per_page": 100}

STAGE = (
    "CREATE TEMP TABLE loop_stage (external_id text, email text, first_name text, last_name text,"
    " username text, phone text, company text, billing jsonb, shipping jsonb, is_paying_customer boolean,"
    " upstream_created_at timestamptz, upstream_updated_at timestamptz, extra jsonb) ON COMMIT DROP"
)
COLUMNS = (
    "external_id, email, first_name, last_name, username, phone, company, billing, shipping,"
    " is_paying_customer, upstream_created_at, upstream_updated_at, extra"
)
UPDATED = [c.strip() for c in COLUMNS.split(",")][1:] + ["synced_at", "deleted_at", "organization_id"]
UPSERT_TAIL = " ON CONFLICT (connection_id, external_id) DO UPDATE SET " + ", ".join(
    f"{c} = EXCLUDED.{c}" for c in UPDATED
)
INSERT = (
    "INSERT INTO customers_customer (organization_id, connection_id, synced_at, deleted_at, customer_code,"
    f" customer_group_id, loyalty_tier, {COLUMNS}) SELECT %s, %s, now(), NULL, '', '', '', {COLUMNS}"
)


# The young generation's threshold during a run, as the engine raises it during its runs (SYNC_GC_THRESHOLD's
# default, core/gctune.py): fewer collector passes over the parsed records. A simple speed-up the reference takes
# too: interleaved at 100,000 customers (2026-12-05, 6 rounds) the loop took 3.20-3.25 s with it against
# 3.28-3.33 s without, faster in every round.
GC_THRESHOLD = int(os.environ.get("SYNC_GC_THRESHOLD") or 1_000_000)  # as config/settings.py reads it


def _fewer_collections(fn):
    """Run ``fn`` with the collector's young generation at GC_THRESHOLD, restored after: the engine's own
    switch (core.gctune, no sync logic), so both sides are tuned by the same code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with fewer_collections(GC_THRESHOLD):
            return fn(*args, **kwargs)

    return wrapper


def customers_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/wp-json/wc/v3/customers") else base + "/wp-json/wc/v3/customers"


def bodies(url: str, *, key: str, secret: str, threads: int = 1) -> Iterator[bytes]:
    """Every page's raw body, in page order: page 1 says how many pages there are (X-WP-TotalPages)."""
    params = {**QUERY, "consumer_key": key, "consumer_secret": secret}
    local = threading.local()

    def get(page: int) -> bytes:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False  # loopback only: no proxy from the environment
        resp = session.get(url, params={**params, "page": page}, timeout=(5, 30))
        resp.raise_for_status()
        if page == 1:
            local.total_pages = int(resp.headers["X-WP-TotalPages"])
        return resp.content

    yield get(1)
    rest = range(2, local.total_pages + 1)
    if threads <= 1:
        for page in rest:
            yield get(page)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            yield from pool.map(get, rest)


def _columns(r: dict) -> tuple:
    """The COLUMNS of one customer, straight from the record (the JSON ones rendered with orjson)."""
    billing = r["billing"]
    return (
        str(r["id"]),
        r["email"],
        r["first_name"],
        r["last_name"],
        r["username"],
        billing["phone"],
        billing["company"],
        orjson.dumps(billing).decode(),
        orjson.dumps(r["shipping"]).decode(),
        r["is_paying_customer"],
        r["date_created_gmt"] + "Z",  # _gmt fields are UTC without a zone
        (r["date_modified_gmt"] or r["date_created_gmt"]) + "Z",  # null until first edited, as the mapper reads it
        orjson.dumps({"role": r["role"], "avatar_url": r["avatar_url"]}).decode(),
    )


@_fewer_collections
def run(
    base_url: str, dsn: str, *, organization_id: int, connection_id: int, key: str, secret: str, threads: int = 1
) -> tuple[float, int]:
    """Fetch, parse, COPY, upsert, commit; return (seconds, rows upserted)."""
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(STAGE)
        with cur.copy(f"COPY loop_stage ({COLUMNS}) FROM STDIN") as cp:
            for body in bodies(customers_url(base_url), key=key, secret=secret, threads=threads):
                for r in orjson.loads(body):
                    cp.write_row(_columns(r))
        cur.execute(INSERT + " FROM loop_stage" + UPSERT_TAIL, (organization_id, connection_id))
        rows = cur.rowcount
        conn.commit()
    return time.perf_counter() - t0, rows


@_fewer_collections
def run_direct(
    base_url: str, dsn: str, *, organization_id: int, connection_id: int, key: str, secret: str, threads: int = 1
) -> tuple[float, int]:
    """``run`` for a table known to hold none of the rows: COPY straight into ``customers_customer`` (no
    staging table, no ON CONFLICT), commit. The simplest fast program for a first sync; the engine takes
    the same shortcut for a connection's first sync, so B1 prints its ratio to this one too."""
    now = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())
    cols = "organization_id, connection_id, synced_at, customer_code, customer_group_id, loyalty_tier, " + COLUMNS
    rows = 0
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY customers_customer ({cols}) FROM STDIN") as cp:
            for body in bodies(customers_url(base_url), key=key, secret=secret, threads=threads):
                for r in orjson.loads(body):
                    cp.write_row((organization_id, connection_id, now, "", "", "", *_columns(r)))
                    rows += 1
        conn.commit()
    return time.perf_counter() - t0, rows


@_fewer_collections
def run_noparse(
    base_url: str, dsn: str, *, organization_id: int, connection_id: int, key: str, secret: str, threads: int = 1
) -> tuple[float, int]:
    """Fetch, COPY the raw bodies, let PostgreSQL extract the columns and upsert, commit."""
    extract = (
        "SELECT e->>'id' AS external_id, e->>'email' AS email, e->>'first_name' AS first_name,"
        " e->>'last_name' AS last_name, e->>'username' AS username, e->'billing'->>'phone' AS phone,"
        " e->'billing'->>'company' AS company, e->'billing' AS billing, e->'shipping' AS shipping,"
        " (e->>'is_paying_customer')::boolean AS is_paying_customer,"
        " ((e->>'date_created_gmt') || 'Z')::timestamptz AS upstream_created_at,"
        " (COALESCE(NULLIF(e->>'date_modified_gmt', ''), e->>'date_created_gmt') || 'Z')::timestamptz"
        " AS upstream_updated_at,"
        " jsonb_build_object('role', e->>'role', 'avatar_url', e->>'avatar_url') AS extra"
        " FROM loop_pages, jsonb_array_elements(body) AS e"
    )
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE loop_pages (body jsonb) ON COMMIT DROP")
        with cur.copy("COPY loop_pages (body) FROM STDIN") as cp:
            for body in bodies(customers_url(base_url), key=key, secret=secret, threads=threads):
                cp.write_row((body.decode(),))
        cur.execute(INSERT + f" FROM ({extract}) AS x" + UPSERT_TAIL, (organization_id, connection_id))
        rows = cur.rowcount
        conn.commit()
    return time.perf_counter() - t0, rows


@_fewer_collections
def run_sqlite(
    base_url: str, path: str, *, organization_id: int, connection_id: int, key: str, secret: str, threads: int = 1
) -> tuple[float, int]:
    """The plain loop on SQLite (the embedded default): the simplest fast program there is no COPY, so each
    page's rows go in with one ``executemany`` of ``INSERT ... ON CONFLICT DO UPDATE``, all in one
    transaction, on the settings the project gives SQLite (WAL, synchronous=NORMAL). Datetimes in Django's
    SQLite form (UTC, space-separated), JSON columns as text."""
    import sqlite3

    dumps = orjson.dumps
    cols = [c.strip() for c in COLUMNS.split(",")]
    insert = (
        "INSERT INTO customers_customer (organization_id, connection_id, synced_at, deleted_at, customer_code,"
        f" customer_group_id, loyalty_tier, {', '.join(cols)}) VALUES ({', '.join('?' * (7 + len(cols)))})"
        + UPSERT_TAIL
    )
    t0 = time.perf_counter()
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    conn = sqlite3.connect(path, timeout=20, isolation_level=None)
    rows = 0
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        for body in bodies(customers_url(base_url), key=key, secret=secret, threads=threads):
            batch = []
            for r in orjson.loads(body):
                billing = r["billing"]
                batch.append(
                    (
                        organization_id,
                        connection_id,
                        now,
                        None,
                        "",
                        "",
                        "",
                        str(r["id"]),
                        r["email"],
                        r["first_name"],
                        r["last_name"],
                        r["username"],
                        billing["phone"],
                        billing["company"],
                        dumps(billing).decode(),
                        dumps(r["shipping"]).decode(),
                        r["is_paying_customer"],
                        r["date_created_gmt"].replace("T", " "),  # _gmt fields are UTC without a zone
                        (r["date_modified_gmt"] or r["date_created_gmt"]).replace("T", " "),
                        dumps({"role": r["role"], "avatar_url": r["avatar_url"]}).decode(),
                    )
                )
            conn.executemany(insert, batch)
            rows += len(batch)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return time.perf_counter() - t0, rows
