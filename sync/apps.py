from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Sync engine"

    def ready(self) -> None:
        from . import refresh, runpolicy, signals, sinks  # noqa: F401  (connects receivers)

        # The run policies move after every finished run (streak, backoff, needs-reauth, after-run hook).
        signals.sync_run_finished.connect(runpolicy.on_run_finished, dispatch_uid="sync-run-policy")
        # A deleted queue's lines go with it, also those committed after the ORM's cascade read them.
        from django.db.models.signals import post_delete

        from .models import SyncQueue
        from .services.lines import lines_of_deleted_queue

        post_delete.connect(lines_of_deleted_queue, sender=SyncQueue, dispatch_uid="sync-queue-lines")
        refresh.connect_signals()  # runs a view requested, started after its response (sync/refresh.py)
