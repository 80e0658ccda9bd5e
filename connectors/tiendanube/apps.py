from django.apps import AppConfig


class TiendanubeConfig(AppConfig):
    name = "connectors.tiendanube"
    label = "tiendanube"
    verbose_name = "Tiendanube"
