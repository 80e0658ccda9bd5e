"""WooCommerce-specific REST endpoints. Mounted at /api/woocommerce/."""

from django.urls import path

from . import api_views

urlpatterns = [
    path(
        "connections/<int:connection_id>/webhook/",
        api_views.WebhookSetupView.as_view(),
        name="woocommerce-webhook-setup",
    ),
]
