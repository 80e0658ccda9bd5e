"""python -m bench_connectors [--only B3,B5,B6,B7] [--repeat N] [--size N] [--quick]

Creates a fresh PostgreSQL database (DATABASE_URL, default synchub_bench2), migrates it, runs the chosen
benchmarks against the loopback sandboxes and prints a table of medians with their ratio to the target."""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from . import common

ALL = ("B3", "B5", "B6", "B7")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench_connectors", description=__doc__)
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated subset of " + ",".join(ALL))
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per benchmark (medians reported)")
    parser.add_argument("--size", type=int, default=20_000, help="B3: Lightspeed products (issue: 100000)")
    parser.add_argument("--pages", type=int, default=200, help="B5: Tiendanube pages (issue: 200)")
    parser.add_argument("--quick", action="store_true", help="B5 with 60 pages, B6/B7 with fewer samples")
    parser.add_argument("--keep-db", action="store_true", help="do not recreate the database")
    args = parser.parse_args(argv)
    chosen = [b.strip().upper() for b in args.only.split(",") if b.strip()]
    unknown = set(chosen) - set(ALL)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    common.configure_env()
    if not args.keep_db:
        common.fresh_database()
    common.django_setup()
    org, user, token = common.org_and_staff()

    rows: list[dict] = []
    for bench_id in chosen:
        started = time.monotonic()
        print(f"[{bench_id}] running ...", flush=True)
        try:
            rows.append(_run_one(bench_id, args, org, user, token))
        except Exception as exc:  # one benchmark failing must not hide the others
            traceback.print_exc()
            rows.append(
                {
                    "id": bench_id,
                    "name": "-",
                    "measured": f"not available: {exc.__class__.__name__}: {exc}"[:160],
                    "target": "-",
                    "ratio": "-",
                    "met": None,
                    "notes": [],
                }
            )
        print(f"[{bench_id}] done in {time.monotonic() - started:.1f}s", flush=True)
    _print(rows, args)
    return 0


def _run_one(bench_id: str, args, org, user, token) -> dict:
    if bench_id == "B3":
        from . import b3_lightspeed

        return b3_lightspeed.run(size=args.size, repeat=args.repeat, org=org)
    if bench_id == "B5":
        from . import b5_tiendanube

        pages = 60 if args.quick and args.pages == 200 else args.pages
        return b5_tiendanube.run(pages=pages, repeat=1 if pages >= 100 else args.repeat, org=org)
    if bench_id == "B6":
        from . import b6_mulesoft

        return b6_mulesoft.run(samples=60 if args.quick else 200, org=org, user=user)
    from . import b7_triggers

    return b7_triggers.run(clients=20, rounds=2 if args.quick else 5, repeat=args.repeat, org=org, token=token)


def _print(rows: list[dict], args) -> None:
    print("\nMachine")
    for key, value in common.machine().items():
        print(f"  {key:<10} {value}")
    print(f"  command    {' '.join(['python -m bench_connectors', *sys.argv[1:]])}")
    print(f"\n{'id':<4} {'target met':<10} {'ratio to target':<22} measured (median)  | target")
    print("-" * 110)
    for r in rows:
        met = {True: "yes", False: "MISSED", None: "n/a"}[r["met"]]
        print(f"{r['id']:<4} {met:<10} {r['ratio']:<22} {r['measured']}  | {r['target']}")
        print(f"     {r['name']}")
        for note in r.get("notes", []):
            print(f"       - {note}")


if __name__ == "__main__":
    sys.exit(main())
