"""``manage.py tiendanube_import FILE --organization ID [--first-syncs-per-minute N]``: connect many stores."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from connectors.tiendanube import onboarding
from sync.models import Organization


class Command(BaseCommand):
    help = (
        "Connect Tiendanube stores from a CSV (header: store_id,access_token[,scope]) or a JSON list. "
        "Tokens are encrypted and never printed; first syncs are spread at --first-syncs-per-minute."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV or JSON file; '-' reads standard input")
        parser.add_argument("--organization", type=int, required=True, help="organization id")
        parser.add_argument("--format", choices=["csv", "json"], default="")
        parser.add_argument("--first-syncs-per-minute", type=int, default=onboarding.DEFAULT_FIRST_SYNCS_PER_MINUTE)

    def handle(self, *args, **opts):
        import sys

        org = Organization.objects.filter(pk=opts["organization"]).first()
        if org is None:
            raise CommandError(f"no organization {opts['organization']}")
        text = sys.stdin.read() if opts["file"] == "-" else Path(opts["file"]).read_text(encoding="utf-8")
        try:
            rows = onboarding.rows_parse(text, fmt=opts["format"])
        except ValueError as exc:
            raise CommandError(f"cannot read the list: {exc.__class__.__name__}") from None
        report = onboarding.stores_import(
            organization=org, rows=rows, first_syncs_per_minute=opts["first_syncs_per_minute"]
        )
        self.stdout.write(
            f"{report.connected} stores connected ({report.created} new, {report.reconnected} reconnected), "
            f"{len(report.refused)} refused"
        )
        if report.first_sync_from:
            self.stdout.write(
                f"first syncs due from {report.first_sync_from:%Y-%m-%d %H:%M:%S} to "
                f"{report.first_sync_until:%Y-%m-%d %H:%M:%S} UTC (enqueued by the scheduler tick)"
            )
        for store, reason in report.refused[:50]:
            self.stdout.write(f"refused {store}: {reason}")
        if len(report.refused) > 50:
            self.stdout.write(f"... and {len(report.refused) - 50} more refused")
