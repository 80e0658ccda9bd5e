from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"

    def ready(self) -> None:
        from .services import connect_signals

        connect_signals()  # the loyalty refresh after GET /api/customers (see services.py)
