from django.apps import AppConfig


class TiendanubeConfig(AppConfig):
    name = "connectors.tiendanube"
    label = "tiendanube"
    verbose_name = "Tiendanube"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from .receivers import on_user_logged_in

        user_logged_in.connect(on_user_logged_in, dispatch_uid="tiendanube-login-sync")
