from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Sync engine"

    def ready(self) -> None:
        from . import runpolicy, signals

        # The run policies move after every finished run (streak, backoff, needs-reauth, after-run hook).
        signals.sync_run_finished.connect(runpolicy.on_run_finished, dispatch_uid="sync-run-policy")
