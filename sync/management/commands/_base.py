"""Shared bits of the sync_* commands: they stay thin and only call services and selectors.

Exit codes (README "manage.py"), the same for every sync_* command:
    0  done
    1  the run failed, ended partial or was cancelled (or the connection cannot sync)
    2  usage error, or the connection / queue / resource does not exist
    3  nothing to do (no failed lines to retry, queue already finished, nothing to reap, run held back)
"""

from __future__ import annotations

import json
from argparse import RawDescriptionHelpFormatter

from django.core.management import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from sync import selectors, services
from sync.models import SyncQueue

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOTHING_TO_DO = 0, 1, 2, 3
EXIT_CODES_HELP = "exit codes: 0 done; 1 run failed, partial or cancelled; 2 usage error or not found; 3 nothing to do"


def service_error(exc: services.SyncServiceError) -> CommandError:
    """A service refusal as a CommandError with the documented exit code."""
    if isinstance(exc, (services.InvalidQueueAction, services.RunActive)):
        code = EXIT_NOTHING_TO_DO  # the queue's state leaves nothing for this command to do now
    elif isinstance(exc, services.ConnectionUnavailable):
        code = EXIT_FAILED
    else:  # unknown resource, bad or reused idempotency key: the caller's arguments
        code = EXIT_USAGE
    return CommandError(str(exc), returncode=code)


def to_json(data) -> str:
    return json.dumps(data, cls=DjangoJSONEncoder, indent=2, sort_keys=True)


def queue_json(queue: SyncQueue) -> dict:
    """The API's queue detail shape (sync.api.serializers), so scripts read one format everywhere."""
    from sync.api.serializers import QueueDetailSerializer

    return dict(QueueDetailSerializer(queue).data)


class SyncCommand(BaseCommand):
    """Every sync_* command: the exit codes are part of --help."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("epilog", EXIT_CODES_HELP)
        kwargs.setdefault("formatter_class", RawDescriptionHelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def say(self, line: str, *, stream=None) -> None:
        """One line, flushed at once: progress must not sit in a pipe buffer while logs (stderr) go by."""
        stream = stream or self.stdout
        stream.write(line)
        stream.flush()


class QueueCommand(SyncCommand):
    """A command that takes one queue id and applies one service to it."""

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "queue_id", type=int, help="the queue's id (sync_status and the admin's queue list show it)"
        )

    def get_queue(self, queue_id: int) -> SyncQueue:
        try:
            return selectors.queue_by_id(queue_id)
        except SyncQueue.DoesNotExist:
            raise CommandError(f"queue #{queue_id} does not exist", returncode=EXIT_USAGE) from None

    def handle(self, *args, **options) -> None:
        queue = self.get_queue(options["queue_id"])
        try:
            queue = self.apply(queue)
        except services.SyncServiceError as exc:
            raise service_error(exc) from None
        queue.refresh_from_db()
        self.say(selectors.queue_progress_line(queue))

    def apply(self, queue: SyncQueue) -> SyncQueue:  # pragma: no cover - abstract
        raise NotImplementedError
