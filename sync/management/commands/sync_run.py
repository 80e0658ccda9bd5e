"""Run one sync in the foreground, printing a progress line per batch.

    manage.py sync_run <connection_id> <resource> [--full-scan] [--idempotency-key K] [--batch-size N]

If a run of that resource is already active, this joins it (works its lines alongside the other worker).
Exits non-zero unless the run ends done.
"""

from __future__ import annotations

from django.core.management import BaseCommand, CommandError

from sync import gates, selectors, services
from sync.models import Origin, QueueState
from sync.registry import connection_model


class Command(BaseCommand):
    help = "Run one sync of one resource in the foreground with progress lines."

    def add_arguments(self, parser) -> None:
        parser.add_argument("connection_id", type=int)
        parser.add_argument("resource")
        parser.add_argument("--full-scan", action="store_true", help="ignore the cursor and fetch everything")
        parser.add_argument("--idempotency-key", default="", help="same key + same arguments = the same run")
        parser.add_argument("--batch-size", type=int, default=None)

    def handle(self, *args, **options) -> None:
        try:
            connection = connection_model().objects.get(pk=options["connection_id"])
        except connection_model().DoesNotExist:
            raise CommandError(f"connection #{options['connection_id']} does not exist") from None
        try:
            result = services.sync_start(
                connection=connection,
                resource=options["resource"],
                origin=Origin.MANUAL,
                actor="manage.py",
                idempotency_key=options["idempotency_key"],
                full_scan=options["full_scan"],
                enqueue=False,
            )
        except services.SyncServiceError as exc:
            raise CommandError(str(exc)) from None
        queue = result.queue
        verb = {"created": "started", "idempotent": "resuming", "running": "joining the running"}[result.reason]
        self.stdout.write(f"{verb} queue #{queue.pk}: {connection.name} / {queue.resource}")
        last: list[str] = []

        def progress(q) -> None:
            line = selectors.queue_progress_line(q)
            if not last or line != last[-1]:  # one line per change, not per poll
                last.append(line)
                self.stdout.write(line)

        state = gates.run_queue_gated(queue.pk, progress=progress, batch_size=options["batch_size"])
        if state == gates.HELD_BACK:
            raise CommandError(
                f"queue #{queue.pk} held back by the {connection.kind} connector (see its activity); it stays "
                "queued and the reaper (sync_reap / the reaper schedule) resumes it when it may run"
            )
        queue.refresh_from_db()
        self.stdout.write(selectors.queue_progress_line(queue))
        if state != QueueState.DONE:
            detail = f": {queue.last_error}" if queue.last_error else ""
            raise CommandError(f"queue #{queue.pk} ended {state}{detail}")
