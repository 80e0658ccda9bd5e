"""The main job on a fresh machine: migrate SQLite, create a demo organization and staff user, start the
sandbox upstreams, run every connector's demo sync, print a report, then serve the admin with a qcluster
worker running beside it (so every button works) until Ctrl-C stops both.

Each connector contributes ``connectors/<kind>/demo.py`` with ``run(ctx) -> list[dict]`` (rows for the
report: connector, resource, records, seconds, state, note). A connector without one is listed as such.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import BaseCommand, call_command

from sync.models import Membership, Organization
from sync.registry import KINDS, get_connector
from sync.runpolicy import schedules_register

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
        parser.add_argument("--port", default="8000", help="port of the admin on 127.0.0.1 (default 8000)")
        parser.add_argument("--only", nargs="*", default=None, help="connector kinds to run")
        parser.add_argument(
            "--no-worker", action="store_true", help="serve without starting a qcluster worker (buttons only queue)"
        )

    def handle(self, *args, no_serve=False, port="8000", only=None, no_worker=False, **opts):
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
                schedules_register()  # what a deploy does: the reaper, purge and connector schedules
                if not no_worker:
                    log_path = self._start_worker(stack)
                    self.stdout.write(f"\nWorker: `manage.py qcluster` running (log: {log_path}); stops with the demo")
                self.stdout.write(
                    f"\nAdmin: http://127.0.0.1:{port}/admin/  user {DEMO_USER!r} password {DEMO_PASSWORD!r}"
                )
                self.stdout.write(f"API docs: http://127.0.0.1:{port}/api/docs/   (Ctrl-C to stop)")
                # SIGTERM unwinds like Ctrl-C, so the worker and the sandboxes are stopped, not orphaned.
                signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
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

    def _start_worker(self, stack: contextlib.ExitStack) -> Path:
        """A qcluster beside the admin, so Sync now / Run export now / Refresh now are run, not just queued. It
        inherits this process's environment, which the connectors' demos pointed at their sandboxes (and the
        MDM demo at its local S3). Stopped (SIGTERM, then SIGKILL after 15 s) when the demo stops."""
        log_path = Path(settings.BASE_DIR) / "demo-qcluster.log"
        log = stack.enter_context(open(log_path, "ab"))
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=settings.BASE_DIR,
            env={**os.environ, "Q_WORKERS": os.environ.get("Q_WORKERS", "2")},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the demo only; the demo then stops the worker in order
        )

        def stop() -> None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self.stdout.write(f"worker stopped (exit {proc.returncode})")

        stack.callback(stop)
        return log_path

    def _report(self, rows: list[dict]) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING("\nReport"))
        header = f"{'connector':<12} {'resource':<18} {'records':>8} {'seconds':>8}  {'state':<14} note"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for r in rows:
            self.stdout.write(
                f"{r['connector']:<12} {r['resource']:<18} {r['records']:>8} {r['seconds']:>8.2f}  {r['state']:<14} {r.get('note', '')}"
            )
