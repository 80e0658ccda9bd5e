from django.apps import AppConfig


class MDMConfig(AppConfig):
    name = "connectors.mdm"
    label = "mdm"
    verbose_name = "MDM"
