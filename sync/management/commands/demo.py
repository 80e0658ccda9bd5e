"""The main job on a fresh machine: migrate SQLite, create a demo organization and staff user, start the
sandbox upstreams, run every connector's demo sync, print a report, then serve the admin.

Each connector contributes ``connectors/<kind>/demo.py`` with ``run(ctx) -> list[dict]`` (rows for the
report: connector, resource, records, seconds, state, note). A connector without one is listed as such.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import BaseCommand, call_command

from sync.models import Membership, Organization
from sync.registry import KINDS, get_connector

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"  # printed on purpose: a local demo account on a throwaway SQLite db


@dataclass
class DemoContext:
    organization: Organization
    user: object
    stack: contextlib.ExitStack
    stdout: object
    notes: list[str] = field(default_factory=list)
    # kind -> what its demo left running (sandbox, connections), for the convergence step.
    upstreams: dict = field(default_factory=dict)

    def say(self, message: str) -> None:
        self.stdout.write(f"  {message}")


class Command(BaseCommand):
    help = "Run the SyncHub demo against the built-in sandbox upstreams, then serve the admin."

    def add_arguments(self, parser):
        parser.add_argument("--no-serve", action="store_true", help="print the report and exit")
        parser.add_argument("--port", default="8000")
        parser.add_argument("--only", nargs="*", default=None, help="connector kinds to run")

    def handle(self, *args, no_serve=False, port="8000", only=None, **opts):
        if not settings.OUTBOUND_ALLOW_LOOPBACK:
            raise SystemExit(
                "the demo talks to sandboxes on loopback: run it with OUTBOUND_ALLOW_LOOPBACK=true (make demo does)"
            )
        self.stdout.write(self.style.MIGRATE_HEADING("SyncHub demo"))
        call_command("migrate", verbosity=0)
        call_command("createcachetable", verbosity=0)
        org, _ = Organization.objects.get_or_create(slug="demo", defaults={"name": "Demo Organization"})
        User = get_user_model()
        user = User.objects.filter(username=DEMO_USER).first()
        if user is None:
            user = User.objects.create_user(DEMO_USER, password=DEMO_PASSWORD, is_staff=True)
        Membership.objects.get_or_create(user=user, organization=org, defaults={"role": "admin"})
        rows: list[dict] = []
        with contextlib.ExitStack() as stack:
            ctx = DemoContext(organization=org, user=user, stack=stack, stdout=self.stdout)
            for kind in KINDS:
                if only and kind not in only:
                    continue
                self.stdout.write(self.style.HTTP_INFO(f"[{kind}]"))
                run = get_connector(kind).hook("demo")
                if run is None:
                    rows.append(
                        {
                            "connector": kind,
                            "resource": "-",
                            "records": 0,
                            "seconds": 0.0,
                            "state": "not built yet",
                            "note": "",
                        }
                    )
                    continue
                started = time.monotonic()
                try:
                    rows.extend(run(ctx))
                except Exception as exc:  # one connector's demo failing must not hide the others
                    rows.append(
                        {
                            "connector": kind,
                            "resource": "-",
                            "records": 0,
                            "seconds": round(time.monotonic() - started, 2),
                            "state": "ERROR",
                            "note": str(exc)[:200],
                        }
                    )
            rows.extend(self._convergence(ctx, only))
            self._report(rows)
            if not no_serve:
                self.stdout.write(
                    f"\nAdmin: http://127.0.0.1:{port}/admin/  user {DEMO_USER!r} password {DEMO_PASSWORD!r}"
                )
                self.stdout.write(f"API docs: http://127.0.0.1:{port}/api/docs/   (Ctrl-C to stop)")
                call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)
        if any(r["state"] == "ERROR" for r in rows) and os.environ.get("DEMO_STRICT") == "1":
            raise SystemExit(1)

    def _convergence(self, ctx: DemoContext, only) -> list[dict]:
        """Issue 16's step: each connector whose demo module has ``converge(ctx) -> dict`` edits, deletes and
        trashes records in its sandbox, runs what its schedules run (incremental runs, the reconciliation
        full scan), and reports whether its tables equal the upstream."""
        from django.utils.module_loading import import_string

        rows: list[dict] = []
        self.stdout.write(self.style.HTTP_INFO("[convergence]"))
        for kind in KINDS:
            path = get_connector(kind).demo
            if (only and kind not in only) or not path or kind not in ctx.upstreams:
                continue
            try:
                converge = import_string(path.rsplit(".", 1)[0] + ".converge")
            except ImportError:
                continue
            try:
                rows.append(converge(ctx))
            except Exception as exc:  # one connector failing must not hide the others
                rows.append(
                    {
                        "connector": kind,
                        "resource": "convergence",
                        "records": 0,
                        "seconds": 0.0,
                        "state": "ERROR",
                        "note": str(exc)[:200],
                    }
                )
        return rows

    def _report(self, rows: list[dict]) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING("\nReport"))
        header = f"{'connector':<12} {'resource':<18} {'records':>8} {'seconds':>8}  {'state':<14} note"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for r in rows:
            self.stdout.write(
                f"{r['connector']:<12} {r['resource']:<18} {r['records']:>8} {r['seconds']:>8.2f}  {r['state']:<14} {r.get('note', '')}"
            )
