"""Shared bits of the sync_* commands: they stay thin and only call services and selectors."""

from __future__ import annotations

from django.core.management import BaseCommand, CommandError

from sync import selectors
from sync.models import SyncQueue
from sync.services import SyncServiceError


class QueueCommand(BaseCommand):
    """A command that takes one queue id and applies one service to it."""

    def add_arguments(self, parser) -> None:
        parser.add_argument("queue_id", type=int)

    def get_queue(self, queue_id: int) -> SyncQueue:
        try:
            return selectors.queue_by_id(queue_id)
        except SyncQueue.DoesNotExist:
            raise CommandError(f"queue #{queue_id} does not exist") from None

    def handle(self, *args, **options) -> None:
        queue = self.get_queue(options["queue_id"])
        try:
            queue = self.apply(queue)
        except SyncServiceError as exc:
            raise CommandError(str(exc)) from None
        queue.refresh_from_db()
        self.stdout.write(selectors.queue_progress_line(queue))

    def apply(self, queue: SyncQueue) -> SyncQueue:  # pragma: no cover - abstract
        raise NotImplementedError
