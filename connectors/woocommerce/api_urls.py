"""WooCommerce-specific REST endpoints. Mounted at /api/woocommerce/."""

from django.urls import path

import sync.api.converters  # noqa: F401  registers <sync_id:...> / <sync_resource:...>

from . import api_views

urlpatterns = [
    path(
        "connections/<sync_id:connection_id>/webhook/",
        api_views.WebhookSetupView.as_view(),
        name="woocommerce-webhook-setup",
    ),
]
