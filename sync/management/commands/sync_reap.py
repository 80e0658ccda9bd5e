"""Return expired line leases to draft, resume stalled queues (what the reaper schedule runs)."""

from django.core.management import BaseCommand

from sync import services


class Command(BaseCommand):
    help = "Reap expired leases and resume stalled queues; --purge also deletes old finished queues."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--purge", action="store_true", help="also purge finished queues past retention")

    def handle(self, *args, **options) -> None:
        result = services.lines_reap()
        self.stdout.write(
            f"reaped: {result['returned']} line(s) back to draft, {result['failed']} failed, "
            f"{result['resumed']} queue(s) resumed"
        )
        if options["purge"]:
            self.stdout.write(f"purged {services.queues_purge()} finished queue(s)")
