from django.apps import AppConfig


class MuleSoftConfig(AppConfig):
    name = "connectors.mulesoft"
    label = "mulesoft"
    verbose_name = "MuleSoft"
