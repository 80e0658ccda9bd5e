"""Apply the deletions the mass-deletion guard held on a full scan."""

from sync import services

from ._base import QueueCommand


class Command(QueueCommand):
    help = "Mark deleted the records a full scan did not see, held by the mass-deletion guard."

    def apply(self, queue):
        return services.queue_apply_deletions(queue=queue, actor="manage.py")
