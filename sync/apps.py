from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Sync engine"

    def ready(self) -> None:
        from . import refresh, runpolicy, signals, sinks  # noqa: F401  (connects receivers)

        # The run policies move after every finished run (streak, backoff, needs-reauth, after-run hook).
        signals.sync_run_finished.connect(runpolicy.on_run_finished, dispatch_uid="sync-run-policy")
        refresh.connect_signals()  # runs a view requested, started after its response (sync/refresh.py)
