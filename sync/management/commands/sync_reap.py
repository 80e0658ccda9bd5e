"""Return expired line leases to draft, resume stalled queues (what the reaper schedule runs).

Exit codes: 0 something was reaped, resumed or purged; 3 nothing to do; 2 usage.
"""

from django.core.management import CommandError

from sync import services

from ._base import EXIT_NOTHING_TO_DO, SyncCommand


class Command(SyncCommand):
    help = "Reap expired leases and resume stalled queues; --purge also deletes old finished queues."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--purge", action="store_true", help="also purge finished queues past retention")

    def handle(self, *args, **options) -> None:
        result = services.lines_reap()
        self.say(
            f"reaped: {result['returned']} line(s) back to draft, {result['failed']} failed, "
            f"{result['resumed']} queue(s) resumed"
        )
        purged = 0
        if options["purge"]:
            purged = services.queues_purge()
            self.say(f"purged {purged} finished queue(s)")
        if not (result["returned"] or result["failed"] or result["resumed"] or purged):
            raise CommandError("nothing to reap", returncode=EXIT_NOTHING_TO_DO)
