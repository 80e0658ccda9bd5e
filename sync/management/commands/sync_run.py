"""Run one sync in the foreground, printing a progress line each time the progress changes.

    manage.py sync_run <connection_id> <resource> [--full-scan] [--idempotency-key K] [--batch-size N] [--json]

If a run of that resource is already active, this joins it (works its lines alongside the other worker).
Progress goes to stdout (stderr with --json, where stdout carries only the final report), logs to stderr.
Exit codes: 0 done, 1 failed / partial / cancelled, 2 usage or not found, 3 held back (nothing to do now).
"""

from __future__ import annotations

from django.core.management import CommandError

from sync import gates, selectors, services
from sync.models import Origin, QueueState
from sync.registry import connection_model

from ._base import EXIT_FAILED, EXIT_NOTHING_TO_DO, EXIT_OK, EXIT_USAGE, SyncCommand, queue_json, service_error, to_json


class Command(SyncCommand):
    help = "Run one sync of one resource in the foreground with progress lines."

    def add_arguments(self, parser) -> None:
        parser.add_argument("connection_id", type=int, help="the connection's id (sync_status or the admin shows it)")
        parser.add_argument(
            "resource", help="a resource the connection's connector declares, e.g. customers, orders, products"
        )
        parser.add_argument("--full-scan", action="store_true", help="ignore the cursor and fetch everything")
        parser.add_argument("--idempotency-key", default="", help="same key + same arguments = the same run")
        parser.add_argument(
            "--batch-size", type=int, default=None, help="lines claimed per batch (default: the engine's)"
        )
        parser.add_argument(
            "--json", action="store_true", help="print the final report as JSON on stdout (progress goes to stderr)"
        )

    def handle(self, *args, **options) -> None:
        as_json = options["json"]
        progress_out = self.stderr if as_json else self.stdout
        try:
            connection = connection_model().objects.get(pk=options["connection_id"])
        except connection_model().DoesNotExist:
            raise CommandError(
                f"connection #{options['connection_id']} does not exist", returncode=EXIT_USAGE
            ) from None
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
            raise service_error(exc) from None
        queue = result.queue
        verb = {"created": "started", "idempotent": "resuming", "running": "joining the running"}[result.reason]
        self.say(f"{verb} queue #{queue.pk}: {connection.name} / {queue.resource}", stream=progress_out)
        last: list[str] = []

        def progress(q) -> None:
            line = selectors.queue_progress_line(q)
            if not last or line != last[-1]:  # one line per change, not per poll
                last.append(line)
                self.say(line, stream=progress_out)

        state = gates.run_queue_gated(queue.pk, progress=progress, batch_size=options["batch_size"])
        queue.refresh_from_db()
        if state == gates.HELD_BACK:
            code, error = (
                EXIT_NOTHING_TO_DO,
                f"queue #{queue.pk} held back by the {connection.kind} connector (see its activity); it stays "
                "queued and the reaper (sync_reap / the reaper schedule) resumes it when it may run",
            )
        elif state != QueueState.DONE:
            detail = f": {queue.last_error}" if queue.last_error else ""
            code, error = EXIT_FAILED, f"queue #{queue.pk} ended {state}{detail}"
        else:
            code, error = EXIT_OK, ""
        progress(queue)  # the final state, unless the last progress line already said it
        if as_json:
            report = {"result": result.reason, "outcome": state, "exit_code": code, "queue": queue_json(queue)}
            self.say(to_json(report))
        if code != EXIT_OK:
            raise CommandError(error, returncode=code)
