"""Cancel a queue: draft lines are dropped, fetching stops, the cursor stays."""

from sync import services

from ._base import QueueCommand


class Command(QueueCommand):
    help = "Cancel a queue."

    def apply(self, queue):
        return services.queue_cancel(queue=queue, actor="manage.py")
