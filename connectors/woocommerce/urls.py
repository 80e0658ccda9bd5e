"""Routes where WooCommerce calls us. Mounted at /connectors/woocommerce/."""

from django.urls import path

import sync.api.converters  # noqa: F401  registers <sync_id:...> / <sync_resource:...>

from . import views

app_name = "woocommerce"

urlpatterns = [
    path("webhooks/<sync_id:connection_id>/", views.webhook, name="webhook"),
]
