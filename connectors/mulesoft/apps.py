from django.apps import AppConfig


class MuleSoftConfig(AppConfig):
    name = "connectors.mulesoft"
    label = "mulesoft"
    verbose_name = "MuleSoft"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from sync.models import SystemSetting

        from .services import sync_connections_to_setting

        # The endpoint setting decides the organization's MuleSoft connection (services.configured_connection).
        post_save.connect(sync_connections_to_setting, sender=SystemSetting, dispatch_uid="mulesoft.endpoint")
