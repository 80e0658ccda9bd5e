from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Sync engine"

    def ready(self) -> None:
        from . import refresh, signals, sinks  # noqa: F401  (connects receivers)

        refresh.connect_signals()  # runs a view requested, started after its response (sync/refresh.py)
