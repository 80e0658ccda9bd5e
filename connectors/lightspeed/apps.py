from django.apps import AppConfig


class LightspeedConfig(AppConfig):
    name = "connectors.lightspeed"
    label = "lightspeed"
    verbose_name = "Lightspeed"
