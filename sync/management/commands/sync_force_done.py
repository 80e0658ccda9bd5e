"""Cancel what is left of a queue so it completes (done)."""

from sync import services

from ._base import QueueCommand


class Command(QueueCommand):
    help = "Force a queue done: its draft and failed lines are cancelled."

    def apply(self, queue):
        return services.queue_force_done(queue=queue, actor="manage.py")
