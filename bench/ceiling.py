"""``python -m bench.ceiling [--size N] [--repeat R]``: how close could a first sync come without requests or
without the mapper's work? A measurement of two stand-ins, not a change to the engine.

Rows, interleaved (the order reversed every other round), each a first sync of N customers on an empty table
against the pre-rendered upstream:
- ``engine``: the engine as a user gets it (``scenario.engine_run``).
- ``urllib3``: the same run with the Woo resource's page fetch (``WooResource._get``) replaced by a bare
  ``urllib3`` GET (same URL, query and keys, same ``orjson`` parse, keys, order check and body digest), so
  none of ``requests``, the ``Client``'s retries, URL check, bounded read or response checks (status, Content-
  Type) runs; urllib3's own defaults (its retries, redirects followed, no timeout) stand, and only the query
  and headers the client adds are passed on (enough for the keys over loopback http). What a leaner transport
  could save at most; the tests' ``responses`` mocks and the client's guarantees are gone.
- ``cheapmap``: the run with ``Customers.map`` replaced by column extraction as the plain loop does it (no
  strip, no email check, no fallback; the timestamps still parsed, as the binary COPY needs them). Valid only
  on the generated store, where no value needs what the real mapper does (tests/bench checks that the plain
  loop's rows equal the engine's there). What a mapping as cheap as the loop's could save at most.
- ``both``: the two together. ``loop``: the plain loop (bench/plain_loop.py), the reference of B1.

Every engine row is checked as ``engine_run`` checks it (queue done, as many rows as customers). Prints the
medians and each row's ratio to the loop (loop wall / row wall). As in B1, the engine's time includes its
``sync_start`` and the loop's its connect: the ratios to the loop carry that, the comparisons between the
engine's rows do not. Uses the database in DATABASE_URL as it is
(migrated; ``python -m bench --only B2 --repeat 1`` sets it up).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import time
from urllib.parse import urlencode, urlsplit

from bench import plain_loop, scenario

VARIANTS = ("engine", "urllib3", "cheapmap", "both", "loop")


def _stand_ins():
    """(patch(variant), restore()): install the variant's stand-ins on the Woo classes, or take them away."""
    import orjson
    import urllib3

    from connectors.base import BadPage, _long_integer
    from connectors.woocommerce import resources as woo
    from core.timestamps import parse_upstream_datetime as parse

    pool = urllib3.PoolManager(maxsize=8)  # as many connections as the page threads (4) and more
    real_get, real_map = woo.WooResource._get, woo.Customers.map

    def bare_get(self, client, params: dict, offset: int, known=None):
        kwargs: dict = {"params": {**params, "offset": offset, "per_page": self.page_size}, "headers": {}}
        client.authenticate(kwargs)  # the keys, as the client adds them (query parameters over loopback)
        url = client.url(self.endpoint) + "?" + urlencode(kwargs["params"])
        response = pool.request("GET", url, headers={"Accept": "application/json", **kwargs["headers"]})
        content = response.data

        # The parse as response_json does it for a UTF-8 body: the long-integer guard, then orjson.
        data = orjson.loads(content) if not _long_integer(content) else json.loads(content)
        if not isinstance(data, list):
            raise BadPage(f"{self.name}: expected a JSON array of records at offset {offset}")
        keys = self.page_keys(data)
        present = [k for k in keys if k is not None]
        if present != sorted(present):
            raise BadPage(f"{self.name}: page at offset {offset} is not in the requested order")
        digest = hashlib.sha256(response.headers.get("Content-Type", "").encode() + b"\n")
        digest.update(content)
        total = woo._int_or_none(response.headers.get("X-WP-Total"))
        server_time = woo._server_time(response.headers.get("Date"))
        # What Page.reload parses again (page_json_again's arguments; a UTF-8 JSON body parses as above).
        return data, keys, total, server_time, digest.digest(), None, (content, "utf-8", urlsplit(url).path)

    def columns_map(self, r: dict) -> dict:
        billing = r["billing"]
        created = parse(r["date_created_gmt"])
        return {
            "first_name": r["first_name"],
            "last_name": r["last_name"],
            "email": r["email"],
            "username": r["username"],
            "phone": billing["phone"],
            "company": billing["company"],
            "billing": billing,
            "shipping": r["shipping"],
            "is_paying_customer": r["is_paying_customer"],
            "upstream_created_at": created,
            "upstream_updated_at": parse(r["date_modified_gmt"]) or created,
            "extra": {"role": r["role"], "avatar_url": r["avatar_url"]},
        }

    def patch(variant: str) -> None:
        woo.WooResource._get = bare_get if variant in ("urllib3", "both") else real_get
        woo.Customers.map = columns_map if variant in ("cheapmap", "both") else real_map

    def restore() -> None:
        woo.WooResource._get, woo.Customers.map = real_get, real_map
        pool.clear()

    return patch, restore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scenario.setup_django(migrate=False)
    n = args.size
    patch, restore = _stand_ins()
    up = scenario.Upstream("prerendered", stores=[(n, 0)])
    org = scenario.org()
    walls: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpus: dict[str, list[float]] = {v: [] for v in VARIANTS}
    print(f"load at start {os.getloadavg()}", flush=True)
    try:
        for i in range(args.repeat):
            for variant in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
                scenario.reset_tables()
                conn = scenario.make_connection(up, up.url(n), name=f"ceiling-{i}-{variant}")
                scenario.checkpoint()
                c0 = time.process_time()
                if variant == "loop":
                    wall, rows = plain_loop.run(
                        up.url(n),
                        os.environ["DATABASE_URL"],
                        organization_id=org.pk,
                        connection_id=conn.pk,
                        key=up.key,
                        secret=up.secret,
                    )
                    if rows != n:
                        raise RuntimeError(f"plain loop wrote {rows} rows, expected {n}")
                else:
                    patch(variant)
                    try:
                        wall = scenario.engine_run(conn, expect=n)
                    finally:
                        restore()
                walls[variant].append(wall)
                cpus[variant].append(time.process_time() - c0)
                print(f"{variant} {wall:.2f} s (this process's CPU {cpus[variant][-1]:.2f} s)", flush=True)
    finally:
        restore()
        up.close()
    loop = statistics.median(walls["loop"])
    print(f"\n{n:,} customers, medians of {args.repeat}; load at end {os.getloadavg()}")
    print("| run | wall s | client CPU s | loop / run |")
    print("|---|---|---|---|")
    for variant in VARIANTS:
        wall = statistics.median(walls[variant])
        print(f"| {variant} | {wall:.2f} | {statistics.median(cpus[variant]):.2f} | {loop / wall:.2f} |")


if __name__ == "__main__":
    main()
