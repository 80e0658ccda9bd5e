from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        from sync.signals import sync_run_finished

        from . import services

        # Connected after sync's own receiver (INSTALLED_APPS order), so the run policy has already moved the
        # (connection, resource) failure streak this receiver reads.
        sync_run_finished.connect(services.on_run_finished, dispatch_uid="alerts-run-finished")
