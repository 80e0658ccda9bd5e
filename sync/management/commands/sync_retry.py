"""Re-queue the failed lines of a queue (and resume a failed fetch)."""

from sync import services

from ._base import QueueCommand


class Command(QueueCommand):
    help = "Retry the failed lines of a queue."

    def apply(self, queue):
        return services.queue_retry(queue=queue, actor="manage.py")
