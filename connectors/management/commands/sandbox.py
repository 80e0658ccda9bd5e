"""Serve the built-in sandbox upstreams on 127.0.0.1 until Ctrl-C, printing each URL and how to use it.

manage.py sandbox [--only woocommerce mdm ...] [--port 9100] [--exit-after SECONDS]
"""

from __future__ import annotations

import contextlib
import time

from django.core.management import CommandError

from connectors import sandbox_catalog as catalog
from sync.management.commands._base import EXIT_USAGE, SyncCommand


class Command(SyncCommand):
    help = "Serve the sandbox upstreams (WooCommerce, Lightspeed, Tiendanube, MuleSoft, MDM, S3) on loopback."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--only", nargs="+", metavar="KIND", default=None, help=f"serve only these: {', '.join(catalog.STARTERS)}"
        )
        parser.add_argument(
            "--port",
            type=int,
            default=0,
            help="first port; the next sandboxes take the following ones (default: any free)",
        )
        parser.add_argument(
            "--exit-after", type=float, default=None, metavar="SECONDS", help="stop after this long (default: Ctrl-C)"
        )

    def handle(self, *args, only=None, port=0, exit_after=None, **options) -> None:
        unknown = sorted(set(only or ()) - set(catalog.STARTERS))
        if unknown:
            raise CommandError(f"unknown sandbox(es): {', '.join(unknown)}", returncode=EXIT_USAGE)
        with contextlib.ExitStack() as stack:
            served = catalog.start(stack, only, port)
            for entry in served:
                self.say(f"{entry.kind:<12} {entry.url}")
                self.say(f"{'':<12} {entry.hint}")
            missing = sorted(set(only or catalog.STARTERS) - {e.kind for e in served})
            if missing:
                self.say(
                    f"not served: {', '.join(missing)} (moto is not installed: pip install -r requirements-demo.txt)"
                )
            self.say("sandboxes bind to 127.0.0.1 only; Ctrl-C stops them" if exit_after is None else "")
            try:
                deadline = None if exit_after is None else time.monotonic() + exit_after
                while deadline is None or time.monotonic() < deadline:
                    time.sleep(0.2)
            except KeyboardInterrupt:
                pass
